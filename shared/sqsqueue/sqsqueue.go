// Package sqsqueue is the adapter of resultsfeed.Queue over Amazon SQS:
// SendMessageBatch with up to ten messages and 256 KiB a request.
package sqsqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/checkstack/satellite-backend/shared/resultsfeed"
)

// SQS's limits on one SendMessageBatch: ten entries, and a payload no
// larger than the classic 256 KiB message maximum (the current maximum is
// 1 MiB; the smaller one holds everywhere).
const (
	MaxBatchEntries = 10
	MaxBatchBytes   = 256 << 10
)

// entryRetries is how often entries SQS refuses for a reason of its own
// (not the sender's fault) are sent again before they count as failed.
const entryRetries = 2

// API is the part of the SQS client a Queue calls.
type API interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

var _ API = (*sqs.Client)(nil)

// Queue implements resultsfeed.Queue.
type Queue struct {
	api API
	url string
	// RetryDelay is the wait before entries are sent again (100 ms when
	// zero).
	RetryDelay time.Duration
}

var _ resultsfeed.Queue = (*Queue)(nil)

// New returns the queue at queueURL, sent to through api.
func New(api API, queueURL string) *Queue {
	return &Queue{api: api, url: queueURL}
}

// SendBatch implements resultsfeed.Queue: as many messages a request as
// SQS takes. A request that fails after the client's retries fails its
// messages; an entry SQS refuses is sent again unless the refusal is the
// sender's fault.
func (q *Queue) SendBatch(ctx context.Context, bodies [][]byte) []error {
	errs := make([]error, len(bodies))
	for start := 0; start < len(bodies); {
		end, size := start, 0
		for end < len(bodies) && end-start < MaxBatchEntries && (end == start || size+len(bodies[end]) <= MaxBatchBytes) {
			size += len(bodies[end])
			end++
		}
		q.send(ctx, bodies, start, end, errs)
		start = end
	}
	return errs
}

// send sends bodies[start:end] as one request (and the entries SQS
// refused, again), writing each one's outcome into errs.
func (q *Queue) send(ctx context.Context, bodies [][]byte, start, end int, errs []error) {
	pending := make([]int, 0, end-start)
	for i := start; i < end; i++ {
		pending = append(pending, i)
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: make([]types.SendMessageBatchRequestEntry, len(pending))}
		for k, i := range pending {
			in.Entries[k] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(bodies[i]))}
		}
		out, err := q.api.SendMessageBatch(ctx, in)
		if err != nil {
			for _, i := range pending {
				errs[i] = err
			}
			return
		}
		sent := map[string]bool{}
		for _, s := range out.Successful {
			sent[aws.ToString(s.Id)] = true
		}
		failed := map[string]error{}
		retry := map[string]bool{}
		for _, f := range out.Failed {
			id := aws.ToString(f.Id)
			failed[id] = fmt.Errorf("SQS SendMessageBatch: entry refused: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
			retry[id] = !f.SenderFault && attempt < entryRetries
		}
		next := pending[:0]
		for _, i := range pending {
			id := strconv.Itoa(i)
			switch {
			case sent[id]:
				errs[i] = nil
			case retry[id]:
				next = append(next, i)
			case failed[id] != nil:
				errs[i] = failed[id]
			default:
				errs[i] = errors.New("SQS SendMessageBatch: entry neither sent nor refused")
			}
		}
		pending = next
		if len(pending) > 0 {
			if err := q.wait(ctx); err != nil {
				for _, i := range pending {
					errs[i] = err
				}
				return
			}
		}
	}
}

func (q *Queue) wait(ctx context.Context) error {
	d := q.RetryDelay
	if d == 0 {
		d = 100 * time.Millisecond
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
