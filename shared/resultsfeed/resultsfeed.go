// Package resultsfeed delivers every stored health-check result to a
// consumer the operator owns (the Checkstack core), at least once: the feed
// function reads the Results table's stream, packs the results into
// versioned JSON messages and sends them to a queue. The message format is
// documented in docs/RESULTS-FEED.md; this package is its one definition.
package resultsfeed

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Version is the version of the message document. A change a consumer
// could misread (a field removed or changing meaning) is a new version;
// new fields are not.
const Version = 1

// MessageType is the message's type: a batch of stored results.
const MessageType = "results"

// Message is one queue message: results in the order they were stored
// (within one stream shard).
type Message struct {
	Version int     `json:"version"`
	Type    string  `json:"type"`
	Results []Entry `json:"results"`
}

// Entry is one stored result, as the core's result handler takes it.
type Entry struct {
	// ResultID is unique per stored result and the same in every delivery
	// of it: the consumer's deduplication key.
	ResultID string `json:"resultId"`
	// Sequence orders the results of one (configId, systemId,
	// environmentId): a later-stored result has a greater Sequence
	// (compared as strings). It is receivedAt in epoch milliseconds, 13
	// digits, then "-" and the resultId.
	Sequence    string `json:"sequence"`
	SatelliteID string `json:"satelliteId"`
	// SourceLabel is "name (region)" of the satellite when it reported.
	SourceLabel string `json:"sourceLabel"`
	ConfigID    string `json:"configId"`
	SystemID    string `json:"systemId"`
	// EnvironmentID is null for a run without an environment.
	EnvironmentID *string `json:"environmentId"`
	Status        string  `json:"status"`
	// LatencyMs is null when the satellite sent none.
	LatencyMs *float64 `json:"latencyMs"`
	// ExecutedAt is when the satellite ran the check (its clock);
	// ReceivedAt when the backend stored the result (RFC 3339, UTC).
	ExecutedAt string `json:"executedAt"`
	ReceivedAt string `json:"receivedAt"`
	// Result is the result object as the satellite sent it; null when it
	// sent none.
	Result json.RawMessage `json:"result"`
	// ClockSkewMs is present only on a result whose executedAt was more
	// than 5 minutes ahead of receivedAt (the satellite's clock runs fast):
	// how far ahead, in milliseconds. Left out otherwise, so the messages
	// of a fleet with good clocks stay the size they were.
	ClockSkewMs int64 `json:"clockSkewMs,omitempty"`
}

// EntryOf is the feed's form of a stored result.
func EntryOf(r satellite.Result) Entry {
	e := Entry{
		ResultID:      r.ID,
		Sequence:      Sequence(r.ReceivedAt, r.ID),
		SatelliteID:   r.SatelliteID,
		SourceLabel:   r.Source,
		ConfigID:      r.ConfigID,
		SystemID:      r.SystemID,
		EnvironmentID: r.EnvironmentID,
		Status:        string(r.Status),
		LatencyMs:     r.LatencyMs,
		ExecutedAt:    r.ExecutedAt.UTC().Format(time.RFC3339Nano),
		ReceivedAt:    r.ReceivedAt.UTC().Format(time.RFC3339Nano),
		Result:        json.RawMessage("null"),
		ClockSkewMs:   r.ClockSkewMs,
	}
	if len(r.Detail) > 0 && json.Valid(r.Detail) {
		e.Result = json.RawMessage(r.Detail)
	}
	return e
}

// Sequence is the ordering key of a result stored at receivedAt.
func Sequence(receivedAt time.Time, resultID string) string {
	return fmt.Sprintf("%013d-%s", receivedAt.UnixMilli(), resultID)
}

// MaxMessageBytes is the size a message is packed up to: SQS bills each 64
// KiB of a request as one request, so a message this size costs one to
// send and one to receive. A single result larger than this (results are
// at most 128 KB, API Gateway's message limit) is sent alone.
const MaxMessageBytes = 64 << 10

// Record is a stored result read from the stream, with the stream's
// position of it (the id Lambda retries a batch from).
type Record struct {
	Position string
	Result   satellite.Result
}

// Pack is one message and the records in it.
type Pack struct {
	Body []byte
	// First is the index (into the records given to Packs) of its first
	// record; Count how many it holds.
	First, Count int
}

// Packs packs records, in order, into messages of at most maxBytes (one
// record alone may exceed it).
func Packs(records []Record, maxBytes int) ([]Pack, error) {
	var packs []Pack
	envelope, _ := json.Marshal(Message{Version: Version, Type: MessageType, Results: []Entry{}})
	overhead := len(envelope)
	var (
		cur   []json.RawMessage
		size  = overhead
		first int
	)
	flush := func(next int) {
		if len(cur) == 0 {
			return
		}
		body := make([]byte, 0, size)
		body = append(body, envelope[:len(envelope)-2]...) // up to "results":[
		for i, e := range cur {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, e...)
		}
		body = append(body, ']', '}')
		packs = append(packs, Pack{Body: body, First: first, Count: len(cur)})
		cur, size, first = nil, overhead, next
	}
	for i, r := range records {
		e, err := json.Marshal(EntryOf(r.Result))
		if err != nil {
			return nil, fmt.Errorf("result %s: %w", r.Result.ID, err)
		}
		e = queueText(e)
		if len(cur) > 0 && size+1+len(e) > maxBytes {
			flush(i)
		}
		if len(cur) > 0 {
			size++
		}
		cur, size = append(cur, e), size+len(e)
	}
	flush(len(records))
	return packs, nil
}

// Queue is where messages go: the stack's SQS queue.
type Queue interface {
	// SendBatch sends messages; the error of each (nil when sent) is at
	// its index. A message it reports as failed was not delivered.
	SendBatch(ctx context.Context, bodies [][]byte) []error
}

// Feed sends stored results to the queue.
type Feed struct {
	Queue   Queue
	Log     *slog.Logger
	Metrics *metrics.Recorder
}

// Deliver packs records and sends them. It returns the index of the first
// record not delivered (len(records) when all were): everything before it
// is on the queue, and Lambda retries the batch from it. Records after it
// may have been sent too, and are then delivered again: consumers dedupe
// by resultId.
func (f *Feed) Deliver(ctx context.Context, records []Record) (int, error) {
	packs, err := Packs(records, MaxMessageBytes)
	if err != nil {
		return 0, err
	}
	if len(packs) == 0 {
		return len(records), nil
	}
	bodies := make([][]byte, len(packs))
	for i, p := range packs {
		bodies[i] = p.Body
	}
	errs := f.Queue.SendBatch(ctx, bodies)
	delivered := 0
	for i, p := range packs {
		if errs[i] != nil {
			f.Log.LogAttrs(ctx, slog.LevelError, "results not fed",
				slog.Int("results", len(records)-p.First), slog.String("firstResultId", records[p.First].Result.ID),
				slog.String("error", errs[i].Error()))
			f.Metrics.Count(metrics.FeedFailures, "")
			f.Metrics.Add(metrics.ResultsFed, "", float64(delivered))
			return p.First, errs[i]
		}
		delivered += p.Count
	}
	f.Metrics.Add(metrics.ResultsFed, "", float64(delivered))
	f.Metrics.Add(metrics.FeedMessages, "", float64(len(packs)))
	return len(records), nil
}

// queueText makes an encoded entry hold only characters SQS takes in a
// message (#x9, #xA, #xD, #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF):
// a message with any other is refused, and would be refused on every retry.
// In JSON, characters outside ASCII appear only inside strings, where an
// escape means the same character, so U+FFFE and U+FFFF become "\ufffe"
// and "\uffff", and a byte that is not UTF-8 (the result object is stored
// as the satellite sent it) becomes "\ufffd", the replacement character.
func queueText(e []byte) []byte {
	clean := true
	for i := 0; i < len(e); {
		r, n := utf8.DecodeRune(e[i:])
		if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
			clean = false
			break
		}
		i += n
	}
	if clean {
		return e
	}
	out := make([]byte, 0, len(e)+16)
	for i := 0; i < len(e); {
		r, n := utf8.DecodeRune(e[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			out = append(out, `\ufffd`...)
		case r == 0xFFFE || r == 0xFFFF:
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, e[i:i+n]...)
		}
		i += n
	}
	return out
}
