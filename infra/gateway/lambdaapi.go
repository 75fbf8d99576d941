package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Lambda's limits on an invocation's payload.
const (
	MaxSyncPayloadBytes  = 6 * 1024 * 1024
	MaxAsyncPayloadBytes = 256 * 1024
)

// invokePrefix starts the path of Lambda's Invoke API:
// POST /2015-03-31/functions/{FunctionName}/invocations.
const invokePrefix = "/2015-03-31/functions/"

// LambdaFunction is how the Lambda API runs one function.
type LambdaFunction struct {
	// LogicalID is the template's id, which the Invoker knows it by.
	LogicalID string
	// Timeout bounds each invocation (the function's Timeout).
	Timeout time.Duration
	// Retries is how often a failed asynchronous invocation is retried, and
	// MaxEventAge how long after it was accepted an event may still run.
	Retries     int
	MaxEventAge time.Duration
}

// LambdaConfig configures a LambdaAPI.
type LambdaConfig struct {
	// Invoker runs the functions (SetInvoker sets it later).
	Invoker Invoker
	// Functions maps every name a function is invoked by (its deployed
	// name, its logical id) to it.
	Functions map[string]LambdaFunction
	// RetryDelays are the waits before the first, second, ... retry of a
	// failed asynchronous invocation; Lambda's one and two minutes when
	// nil.
	RetryDelays []time.Duration
	// DuplicateRate is the share of asynchronous events delivered twice:
	// Lambda delivers each at least once, occasionally more (0 never, 1
	// always).
	DuplicateRate float64
	Log           *slog.Logger
}

// DefaultRetryDelays are Lambda's waits before the retries of a failed
// asynchronous invocation.
var DefaultRetryDelays = []time.Duration{time.Minute, 2 * time.Minute}

// LambdaStats counts what the Lambda API did with asynchronous events.
type LambdaStats struct {
	// Accepted events (202); Duplicated of them delivered twice.
	Accepted, Duplicated int
	// Runs of a function for an event, Failed of them; Retried runs after
	// a failure; Dropped events that failed every retry or grew too old.
	Runs, Failed, Retried, Dropped int
}

// LambdaAPI serves the Lambda Invoke API for the template's functions as
// Lambda does: a RequestResponse invocation runs and answers with the
// function's response; an Event invocation is accepted with 202 and run
// later, retried after a failure (after one, then two minutes, as its
// EventInvokeConfig says), and now and then delivered twice.
type LambdaAPI struct {
	cfg LambdaConfig

	mu      sync.Mutex
	invoker Invoker
	stats   LambdaStats

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewLambdaAPI returns the API; Stop ends its pending events.
func NewLambdaAPI(cfg LambdaConfig) *LambdaAPI {
	if cfg.RetryDelays == nil {
		cfg.RetryDelays = DefaultRetryDelays
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &LambdaAPI{cfg: cfg, invoker: cfg.Invoker, ctx: ctx, cancel: cancel}
}

// SetInvoker sets the invoker of functions (for wiring in which the
// functions need the API's URL before they exist).
func (l *LambdaAPI) SetInvoker(inv Invoker) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.invoker = inv
}

func (l *LambdaAPI) currentInvoker() Invoker {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.invoker
}

// Stats returns what the API did with asynchronous events so far.
func (l *LambdaAPI) Stats() LambdaStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

func (l *LambdaAPI) count(f func(*LambdaStats)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.stats)
}

// Stop drops the events still waiting for a retry and waits for running
// invocations, whose context it cancels.
func (l *LambdaAPI) Stop() {
	l.cancel()
	l.wg.Wait()
}

// IsInvokePath reports whether path is one of the Invoke API.
func IsInvokePath(path string) bool { return strings.HasPrefix(path, invokePrefix) }

// lambdaError answers like Lambda: the error type in X-Amzn-ErrorType.
func lambdaError(w http.ResponseWriter, status int, errorType, message string) {
	w.Header().Set("X-Amzn-ErrorType", errorType)
	writeJSON(w, status, map[string]string{"Type": "User", "message": message})
}

// function finds a function by name, ARN or partial ARN
// (123456789012:function:name), with or without a version or alias.
func (l *LambdaAPI) function(name string) (LambdaFunction, bool) {
	if i := strings.Index(name, "function:"); i >= 0 {
		name = name[i+len("function:"):]
		name, _, _ = strings.Cut(name, ":")
	}
	fn, ok := l.cfg.Functions[name]
	return fn, ok
}

func (l *LambdaAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), invokePrefix)
	escaped, ok2 := strings.CutSuffix(rest, "/invocations")
	name, err := url.PathUnescape(escaped)
	if !ok || !ok2 || err != nil || name == "" || strings.Contains(escaped, "/") {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "unknown operation "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		lambdaError(w, http.StatusMethodNotAllowed, "InvalidRequestContentException", "Invoke is a POST")
		return
	}
	fn, ok := l.function(name)
	if !ok {
		lambdaError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+name)
		return
	}
	invocation := r.Header.Get("X-Amz-Invocation-Type")
	limit := MaxSyncPayloadBytes
	if invocation == "Event" {
		limit = MaxAsyncPayloadBytes
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		lambdaError(w, http.StatusBadRequest, "InvalidRequestContentException", "could not read the request body")
		return
	}
	if len(payload) > limit {
		lambdaError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException", "Request must be smaller than the invocation payload limit")
		return
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	if !json.Valid(payload) {
		lambdaError(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json")
		return
	}
	switch invocation {
	case "", "RequestResponse":
		l.invokeSync(w, r.Context(), fn, payload)
	case "Event":
		l.accept(fn, payload)
		w.WriteHeader(http.StatusAccepted)
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
	default:
		lambdaError(w, http.StatusBadRequest, "InvalidParameterValueException", "unknown invocation type "+invocation)
	}
}

// invokeSync runs a RequestResponse invocation: 200 with the response, or
// with X-Amz-Function-Error and the error when the function failed.
func (l *LambdaAPI) invokeSync(w http.ResponseWriter, ctx context.Context, fn LambdaFunction, payload []byte) {
	ctx, cancel := context.WithTimeout(ctx, fn.Timeout)
	defer cancel()
	out, err := l.currentInvoker().Invoke(ctx, fn.LogicalID, payload)
	var fe *FunctionError
	switch {
	case errors.As(err, &fe):
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		writeJSON(w, http.StatusOK, map[string]string{"errorType": fe.Type, "errorMessage": fe.Message})
	case err != nil:
		lambdaError(w, http.StatusInternalServerError, "ServiceException", err.Error())
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	}
}

// accept queues an event: delivered once, or now and then twice.
func (l *LambdaAPI) accept(fn LambdaFunction, payload []byte) {
	accepted := time.Now()
	deliveries := 1
	if l.cfg.DuplicateRate > 0 && rand.Float64() < l.cfg.DuplicateRate {
		deliveries = 2
	}
	l.count(func(s *LambdaStats) {
		s.Accepted++
		if deliveries == 2 {
			s.Duplicated++
		}
	})
	for range deliveries {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.deliver(fn, payload, accepted)
		}()
	}
}

// deliver runs an event, and again after each failure while retries and
// the event's age allow.
func (l *LambdaAPI) deliver(fn LambdaFunction, payload []byte, accepted time.Time) {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(l.ctx, fn.Timeout)
		_, err := l.currentInvoker().Invoke(ctx, fn.LogicalID, payload)
		cancel()
		l.count(func(s *LambdaStats) {
			s.Runs++
			if attempt > 0 {
				s.Retried++
			}
			if err != nil {
				s.Failed++
			}
		})
		if err == nil || l.ctx.Err() != nil {
			return
		}
		delay := l.cfg.RetryDelays[min(attempt, len(l.cfg.RetryDelays)-1)]
		if attempt >= fn.Retries || time.Since(accepted)+delay > fn.MaxEventAge {
			l.count(func(s *LambdaStats) { s.Dropped++ })
			l.cfg.Log.Error("asynchronous invocation failed every attempt; on AWS it goes to the function's OnFailure destination",
				"function", fn.LogicalID, "attempts", attempt+1, "error", err.Error())
			return
		}
		l.cfg.Log.Warn("asynchronous invocation failed; Lambda retries it", "function", fn.LogicalID, "attempt", attempt+1,
			"retryIn", delay.String(), "error", err.Error())
		t := time.NewTimer(delay)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
