// Package phases times where one frame's handling goes (parsing, DynamoDB
// reads and writes, S3 storage, Secrets Manager, posts back to the socket),
// so that a slow frame can be explained from its log line. A handler starts
// a Timings in its context; the AWS adapters add each call's duration to it,
// retries and back-off included. Without a Timings in the context every
// call is a no-op.
package phases

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/smithy-go/middleware"
)

// Phase is where time went.
type Phase int

// The phases of a frame.
const (
	Parse   Phase = iota // reading the frame
	Reads                // DynamoDB reads
	Writes               // DynamoDB writes
	Storage              // S3
	Secrets              // Secrets Manager
	Post                 // Management API posts and deletes
	Other                // any other AWS call (EventBridge, Lambda)
	count
)

var names = [count]string{"parseMs", "readsMs", "writesMs", "storageMs", "secretsMs", "postMs", "otherMs"}

// Timings sums each phase's time for one frame. Calls made at once (a
// fan-out of posts) add up, so phases can sum to more than the frame took.
type Timings struct {
	mu    sync.Mutex
	took  [count]time.Duration
	calls [count]int
	// what the frame turned out to be, for its log line
	frameType, satelliteID string
}

type key struct{}

// Start returns a context whose AWS calls are timed into the returned
// Timings.
func Start(ctx context.Context) (context.Context, *Timings) {
	t := &Timings{}
	return context.WithValue(ctx, key{}, t), t
}

// Add records that a call of phase p took d, when ctx carries Timings.
func Add(ctx context.Context, p Phase, d time.Duration) {
	t, _ := ctx.Value(key{}).(*Timings)
	if t == nil || p < 0 || p >= count {
		return
	}
	t.mu.Lock()
	t.took[p] += d
	t.calls[p]++
	t.mu.Unlock()
}

// Describe notes what the frame is (its type, the satellite that sent it)
// once that is known; empty values leave what was noted.
func Describe(ctx context.Context, frameType, satelliteID string) {
	t, _ := ctx.Value(key{}).(*Timings)
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if frameType != "" {
		t.frameType = frameType
	}
	if satelliteID != "" {
		t.satelliteID = satelliteID
	}
}

// Since records the time since start under phase p.
func Since(ctx context.Context, p Phase, start time.Time) { Add(ctx, p, time.Since(start)) }

// Took returns phase p's summed time and how many calls it counts.
func (t *Timings) Took(p Phase) (time.Duration, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.took[p], t.calls[p]
}

// Attrs returns the frame's type and satellite when noted, the phases that
// took any time in milliseconds with microsecond precision, and "awsCalls".
func (t *Timings) Attrs() []slog.Attr {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []slog.Attr
	if t.frameType != "" {
		out = append(out, slog.String("type", t.frameType))
	}
	if t.satelliteID != "" {
		out = append(out, slog.String("satelliteId", t.satelliteID))
	}
	calls := 0
	for p := Phase(0); p < count; p++ {
		if p != Parse {
			calls += t.calls[p]
		}
		if t.calls[p] == 0 {
			continue
		}
		out = append(out, slog.Float64(names[p], Milliseconds(t.took[p])))
	}
	return append(out, slog.Int("awsCalls", calls))
}

// Milliseconds is d in milliseconds, rounded to the microsecond.
func Milliseconds(d time.Duration) float64 {
	return float64(d.Round(time.Microsecond)) / float64(time.Millisecond)
}

// ForDynamoDB is the phase of a DynamoDB operation ("GetItem").
func ForDynamoDB(operation string) Phase {
	switch operation {
	case "GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems":
		return Reads
	}
	return Writes
}

// ForService is the phase of a call to another AWS API, by the SDK's
// service id ("S3", "SecretsManager", "ApiGatewayManagementApi").
func ForService(serviceID string) Phase {
	switch serviceID {
	case "S3":
		return Storage
	case "SecretsManager", "Secrets Manager":
		return Secrets
	case "ApiGatewayManagementApi":
		return Post
	}
	return Other
}

// AWS is an option of the SDK's service clients (append it to their
// Options.APIOptions) that adds every operation's time, retries and
// back-off included, to the context's Timings: a DynamoDB operation as a
// read or a write, any other by its service (ForService). A presigned URL
// sends no request and is not timed.
func AWS(stack *middleware.Stack) error {
	if IsPresign(stack) {
		return nil
	}
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("PhaseTimings",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			p := ForService(middleware.GetServiceID(ctx))
			if middleware.GetServiceID(ctx) == "DynamoDB" {
				p = ForDynamoDB(middleware.GetOperationName(ctx))
			}
			defer Since(ctx, p, time.Now())
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

// IsPresign reports whether stack presigns a request rather than sends it
// (an S3 presign client's PresignGetObject): the SDK swaps its signing step
// for a presigning one, and an API option sees the stack after that.
func IsPresign(stack *middleware.Stack) bool {
	_, ok := stack.Finalize.Get("PresignHTTPRequest")
	return ok
}
