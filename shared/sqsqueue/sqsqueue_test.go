package sqsqueue_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/shared/sqsqueue"
)

// queue is the adapter over a fresh queue of a local SQS server, with its
// requests counted.
func queue(t *testing.T) (*sqsqueue.Queue, *sqs.Client, string, *atomic.Int64) {
	t.Helper()
	srv, err := localaws.StartSQS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	url, err := srv.CreateQueue("feed", nil)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	count := func(o *sqs.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("count", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				calls.Add(1)
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
		})
	}
	return sqsqueue.New(localaws.SQSClient(srv.URL, count), url), localaws.SQSClient(srv.URL), url, &calls
}

func bodies(t *testing.T, client *sqs.Client, url string) []string {
	t.Helper()
	var out []string
	for {
		r, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return out
		}
		for _, m := range r.Messages {
			out = append(out, aws.ToString(m.Body))
		}
	}
}

func TestSendBatchUsesTenEntriesAndAQuarterMebibyteARequest(t *testing.T) {
	for name, tc := range map[string]struct {
		n, size, requests int
	}{
		"small messages":  {25, 100, 3},
		"64 KiB messages": {9, 64 << 10, 3}, // four fit in 256 KiB with nothing else
		"one":             {1, 10, 1},
	} {
		t.Run(name, func(t *testing.T) {
			q, client, url, calls := queue(t)
			var in [][]byte
			for i := range tc.n {
				in = append(in, []byte(strings.Repeat(string(rune('a'+i%26)), tc.size-1)+"!"))
			}
			for i, err := range q.SendBatch(context.Background(), in) {
				if err != nil {
					t.Errorf("message %d: %v", i, err)
				}
			}
			if got := calls.Load(); got != int64(tc.requests) {
				t.Errorf("%d requests, want %d", got, tc.requests)
			}
			if got := bodies(t, client, url); len(got) != tc.n {
				t.Errorf("%d messages on the queue, want %d", len(got), tc.n)
			}
		})
	}
}

func TestSendBatchReportsEachRefusedMessage(t *testing.T) {
	q, client, url, calls := queue(t)
	errs := q.SendBatch(context.Background(), [][]byte{[]byte("one"), []byte("bad \uffff"), []byte("three")})
	if errs[0] != nil || errs[2] != nil || errs[1] == nil || !strings.Contains(errs[1].Error(), "InvalidMessageContents") {
		t.Errorf("errors %v", errs)
	}
	// The refusal is the sender's fault: sending it again cannot help.
	if got := calls.Load(); got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
	if got := bodies(t, client, url); len(got) != 2 {
		t.Errorf("queue holds %v", got)
	}
}

// TestSendBatchToAMissingQueueFailsEveryMessage: SQS answers with the
// JSON code QueueDoesNotExist and, for its older Query protocol's clients,
// AWS.SimpleQueueService.NonExistentQueue, which the SDK's error names; the
// error is the SDK's QueueDoesNotExist either way.
func TestSendBatchToAMissingQueueFailsEveryMessage(t *testing.T) {
	srv, err := localaws.StartSQS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	q := sqsqueue.New(localaws.SQSClient(srv.URL), srv.QueueURL("gone"))
	for i, err := range q.SendBatch(context.Background(), [][]byte{[]byte("a"), []byte("b")}) {
		var missing *types.QueueDoesNotExist
		if !errors.As(err, &missing) {
			t.Errorf("message %d: %v, want QueueDoesNotExist", i, err)
		}
	}
}
