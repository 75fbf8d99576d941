// Command telemetrybench measures telemetry ack latency on the local stack:
// from the moment a satellite writes a telemetry_batch frame (through the
// core URL, as a real satellite does) to the moment it reads the
// telemetry_ack with that batchId. It starts the stack (in memory,
// functions as Lambda-like instances, its own DynamoDB Local), connects
// -others satellites that heartbeat every -heartbeat-every (before the run,
// or all at once as it starts with -storm), and one satellite that keeps a
// credit window of -window batches of -batch-bytes of a kind the template
// stores (each one a real S3 PUT) for -duration: a new batch as soon as an
// ack frees a slot, a batch acked retryable sent again with the same
// batchId after -retry-after. It prints p50/p90/p99/max of the acks that
// stored a batch, the retryable acks, the batches never acked as stored,
// the connection's first ack, and its first window beside the gateway's
// view of each frame (instance, cold start, frames that overtook it). It
// exits 1 when a batch is not acked as stored within 30 s of the end. It
// is a benchmark, not a test: figures depend on the machine and its load.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/infra/simulator"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

// settleWithin is how long batches still in the window at the end have to
// be acked as stored.
const settleWithin = 30 * time.Second

type config struct {
	duration, heartbeatEvery, retryAfter time.Duration
	others, window, batchBytes           int
	instances                            int
	instanceIdle                         time.Duration
	functions                            string
	storm                                bool
	kind                                 string
	bytesPerMinute                       int
	functionLog                          string
}

func main() {
	var cfg config
	flag.DurationVar(&cfg.duration, "duration", 30*time.Second, "how long new batches are sent")
	flag.IntVar(&cfg.others, "others", 50, "other satellites, heartbeating only")
	flag.DurationVar(&cfg.heartbeatEvery, "heartbeat-every", 15*time.Second, "each other satellite heartbeats this often (the stock agent: 15s)")
	flag.IntVar(&cfg.window, "window", 4, "credit window: batches sent and not yet acked")
	flag.IntVar(&cfg.batchBytes, "batch-bytes", 16<<10, "payload bytes per batch (the frame must fit API Gateway's 128 KB)")
	flag.IntVar(&cfg.batchBytes, "batches-bytes", 16<<10, "same as -batch-bytes")
	flag.StringVar(&cfg.kind, "kind", "logstream", "telemetry kind; must be one the template's TelemetryKinds stores")
	flag.DurationVar(&cfg.retryAfter, "retry-after", time.Second, "wait before resending a batch acked retryable")
	flag.IntVar(&cfg.bytesPerMinute, "bytes-per-minute", 1<<30, "TELEMETRY_BYTES_PER_MINUTE of the stack; 0 keeps the template's")
	flag.IntVar(&cfg.instances, "instances", localstack.DefaultInstances, "instances each function may run at once (each one event at a time)")
	flag.DurationVar(&cfg.instanceIdle, "instance-idle", localstack.DefaultInstanceIdle, "reclaim an instance idle this long (0: never)")
	flag.StringVar(&cfg.functions, "functions", "in-process", "how functions run: in-process, or rie (built binaries under aws-lambda-rie, one process per instance)")
	flag.BoolVar(&cfg.storm, "storm", false, "connect the others while the telemetry satellite starts sending (a reconnect storm, as after a deploy) instead of before")
	flag.StringVar(&cfg.functionLog, "function-log", "", "write the functions' JSON logs (debug level) to this file")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "telemetrybench:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	ctx := context.Background()
	kinds, budget, err := templateTelemetry()
	if err != nil {
		return err
	}
	if !slices.Contains(kinds, cfg.kind) {
		return fmt.Errorf("kind %q is not stored: the template's TelemetryKinds are %s", cfg.kind, strings.Join(kinds, ","))
	}
	payload, items := logPayload(cfg.batchBytes)
	if n := len(batchFrame(protocol.MaxBatchID, cfg.kind, payload)); n > protocol.MaxMessageBytes {
		return fmt.Errorf("a batch frame of %d bytes is over API Gateway's %d; lower -batch-bytes", n, protocol.MaxMessageBytes)
	}
	if cfg.instances < 1 {
		return fmt.Errorf("-instances %d: want at least 1", cfg.instances)
	}
	opts := localstack.Options{Instances: cfg.instances, InstanceIdle: cfg.instanceIdle}
	if cfg.instanceIdle <= 0 {
		opts.InstanceIdle = -1 // localstack: never reclaim
	}
	switch cfg.functions {
	case "in-process":
		opts.Mode = localstack.InProcess
	case "rie":
		opts.Mode = localstack.RIE
	default:
		return fmt.Errorf("-functions %q: want in-process or rie", cfg.functions)
	}
	if cfg.bytesPerMinute > 0 {
		opts.FunctionEnv = map[string]string{"TELEMETRY_BYTES_PER_MINUTE": strconv.Itoa(cfg.bytesPerMinute)}
		budget = strconv.Itoa(cfg.bytesPerMinute)
	}
	if n, err := strconv.Atoi(budget); err == nil {
		budget = sizeOf(n)
	}
	if cfg.functionLog != "" {
		f, err := os.Create(cfg.functionLog)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.FunctionLog, opts.LogLevel = f, slog.LevelDebug
	}
	invocations := &invocationLog{}
	opts.OnInvoke = invocations.add
	stack, err := localstack.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer stack.Stop()

	t := &telemetry{kind: cfg.kind, payload: payload, items: items, slots: make(chan struct{}, cfg.window),
		retryAfter: cfg.retryAfter, inFlight: map[int64]time.Time{}, settled: map[int64]bool{}}
	// Satellites are created first: hashing their tokens (bcrypt) in this
	// process, which also runs the stack, would load it during the run.
	tok, err := create(ctx, stack, "telemetry-bench")
	if err != nil {
		return err
	}
	tokens, err := createOthers(ctx, stack, cfg.others)
	if err != nil {
		return err
	}
	// The telemetry satellite connects first, so the first $connect the
	// gateway reports is its socket.
	invocations.watchNextConnect()
	if t.c, err = connect(ctx, stack, "telemetry-bench", tok, t.read); err != nil {
		return err
	}
	hbCtx, stopHeartbeats := context.WithCancel(ctx)
	defer stopHeartbeats()
	var hb sync.WaitGroup
	heartbeats := make([]int, cfg.others)
	startOthers := func() error {
		others, err := connectOthers(ctx, stack, tokens, cfg.storm)
		for i, c := range others {
			if c == nil {
				continue
			}
			hb.Add(1)
			go func() {
				defer hb.Done()
				heartbeats[i] = heartbeat(hbCtx, c, cfg.heartbeatEvery, time.Duration(i)*cfg.heartbeatEvery/time.Duration(len(others)))
			}()
		}
		return err
	}
	othersConnected := make(chan error, 1)
	if cfg.storm {
		go func() { othersConnected <- startOthers() }()
	} else if err := startOthers(); err != nil {
		return err
	} else {
		othersConnected <- nil
	}
	fmt.Fprintf(os.Stderr, "telemetrybench: window %d, %d-byte %s payloads, %d others heartbeating every %s, for %s ...\n",
		cfg.window, len(payload), cfg.kind, cfg.others, cfg.heartbeatEvery, cfg.duration)

	load := loadAverage()
	t.sendFor(ctx, cfg.duration)
	settled := t.waitSettled(settleWithin)
	stormErr := <-othersConnected
	stopHeartbeats()
	hb.Wait()

	hbTotal := 0
	for _, n := range heartbeats {
		hbTotal += n
	}
	reclaim := "never reclaimed"
	if cfg.instanceIdle > 0 {
		reclaim = "reclaimed after " + cfg.instanceIdle.String() + " idle"
	}
	perFunction := fmt.Sprintf("up to %d instances a function", cfg.instances)
	if cfg.instances == 1 {
		perFunction = "1 instance a function"
	}
	when := "connected before"
	if cfg.storm {
		when = "connecting all at once as it starts"
	}
	fmt.Printf("Telemetry acks, local stack (%s, %s, %s): 1 satellite, credit window %d, %d-byte %s payloads (%d items, %d-byte frames), %s, budget %s a minute; %d others heartbeating every %s (%d heartbeats), %s; %d CPUs, %s, load average %s at start, %s at end\n\n",
		opts.Mode, perFunction, reclaim, cfg.window, len(payload), cfg.kind, items, len(batchFrame(1, cfg.kind, payload)), cfg.duration, budget,
		cfg.others, cfg.heartbeatEvery, hbTotal, when, runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, load, loadAverage())
	lost := t.print(invocations, cfg.window)
	switch {
	case stormErr != nil:
		return stormErr
	case !settled || lost > 0:
		return fmt.Errorf("%d batches not acked as stored within %s of the end", lost, settleWithin)
	}
	return nil
}

// templateTelemetry reads what the local stack gives the message function:
// TELEMETRY_KINDS and TELEMETRY_BYTES_PER_MINUTE resolved from the template
// (the parameters' defaults).
func templateTelemetry() ([]string, string, error) {
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		return nil, "", err
	}
	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		return nil, "", err
	}
	env := tpl.Environment("MessageFunction")
	kinds, err := tpl.Resolve(env["TELEMETRY_KINDS"], nil)
	if err != nil {
		return nil, "", fmt.Errorf("TELEMETRY_KINDS: %w", err)
	}
	budget, err := tpl.Resolve(env["TELEMETRY_BYTES_PER_MINUTE"], nil)
	if err != nil {
		return nil, "", fmt.Errorf("TELEMETRY_BYTES_PER_MINUTE: %w", err)
	}
	return strings.Split(kinds, ","), budget, nil
}

// logPayload is an array of log lines of about size bytes.
func logPayload(size int) (json.RawMessage, int) {
	var items []json.RawMessage
	total := 2
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	for n := 0; ; n++ {
		item, _ := json.Marshal(map[string]any{"stream": "agent", "ts": ts,
			"line": fmt.Sprintf("level=info msg=\"check finished\" check=http-%04d status=healthy latencyMs=%d", n, 10+n%90)})
		if len(items) > 0 && total+len(item)+1 > size {
			break
		}
		items = append(items, item)
		total += len(item) + 1
	}
	b, _ := json.Marshal(items)
	return b, len(items)
}

func batchFrame(id int64, kind string, payload json.RawMessage) []byte {
	b, _ := json.Marshal(map[string]any{"type": protocol.TypeTelemetryBatch, "batchId": id, "kind": kind,
		"payload": payload, "droppedByGroup": map[string]int{"agent": 0}})
	return b
}

// createOthers creates n satellites, two at a time (each token hash is a
// bcrypt), and returns their tokens.
func createOthers(ctx context.Context, stack *localstack.Stack, n int) ([]string, error) {
	tokens := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{}, 2)
	for i := range tokens {
		wg.Add(1)
		gate <- struct{}{}
		go func() {
			defer func() { <-gate; wg.Done() }()
			tokens[i], errs[i] = create(ctx, stack, otherID(i))
		}()
	}
	wg.Wait()
	return tokens, errors.Join(errs...)
}

func otherID(i int) string { return fmt.Sprintf("heartbeat-%03d", i) }

// connectOthers connects and authenticates the satellites created with
// tokens, four at a time, or all at once in a storm.
func connectOthers(ctx context.Context, stack *localstack.Stack, tokens []string, storm bool) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, len(tokens))
	errs := make([]error, len(tokens))
	var wg sync.WaitGroup
	gate := make(chan struct{}, 4)
	if storm {
		gate = make(chan struct{}, max(len(tokens), 1))
	}
	for i, tok := range tokens {
		wg.Add(1)
		gate <- struct{}{}
		go func() {
			defer func() { <-gate; wg.Done() }()
			conns[i], errs[i] = connect(ctx, stack, otherID(i), tok, nil)
		}()
	}
	wg.Wait()
	return conns, errors.Join(errs...)
}

// heartbeat sends heartbeats as the stock agent does, first after offset,
// until ctx ends; it returns how many it sent.
func heartbeat(ctx context.Context, c *websocket.Conn, every, offset time.Duration) int {
	started := time.Now()
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(offset):
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 0; ; n++ {
		frame, _ := json.Marshal(map[string]any{"type": protocol.TypeHeartbeat, "version": "telemetrybench", "uptimeSeconds": int(time.Since(started).Seconds())})
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			if ctx.Err() != nil {
				return n
			}
			fail(fmt.Errorf("heartbeat: %w", err))
		}
		select {
		case <-ctx.Done():
			return n + 1
		case <-tick.C:
		}
	}
}

// create creates a satellite in the registry and returns its token.
func create(ctx context.Context, stack *localstack.Stack, id string) (string, error) {
	tok, err := token.New()
	if err != nil {
		return "", err
	}
	hash, err := token.Hash(tok)
	if err != nil {
		return "", err
	}
	return tok, stack.Registry.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: id, Region: "bench", TokenHash: hash, CreatedAt: time.Now()})
}

// connect authenticates satellite id through the core URL; every frame it
// receives afterwards goes to onFrame (when set).
func connect(ctx context.Context, stack *localstack.Stack, id, tok string, onFrame func([]byte)) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, simulator.SatelliteURL(stack.CoreURL), nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	auth, _ := json.Marshal(map[string]any{"type": protocol.TypeAuthenticate, "clientId": id, "token": tok, "capabilities": []string{"telemetry"}})
	if err := c.Write(ctx, websocket.MessageText, auth); err != nil {
		return nil, err
	}
	_, reply, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	var f map[string]any
	if json.Unmarshal(reply, &f) != nil || f["type"] != protocol.TypeAuthenticated {
		return nil, fmt.Errorf("%s: authenticate answered %s", id, reply)
	}
	// Keep reading (acks, keepalives) so the socket's buffers drain.
	go func() {
		for {
			_, frame, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if onFrame != nil {
				onFrame(frame)
			}
		}
	}()
	return c, nil
}

// percentiles returns the q-quantile (nearest rank below) of lat in ms.
func percentiles(lat []time.Duration) func(q float64) float64 {
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	return func(q float64) float64 {
		if len(sorted) == 0 {
			return 0
		}
		return ms(sorted[int(q*float64(len(sorted)-1))])
	}
}

// sizeOf writes a byte count in the largest binary unit that divides it.
func sizeOf(n int) string {
	switch {
	case n > 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadAverage is the 1-minute load average, "?" where /proc has none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "telemetrybench:", err)
	os.Exit(1)
}
