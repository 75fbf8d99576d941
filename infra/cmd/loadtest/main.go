// Command loadtest measures the local stack: it starts it (in memory, in
// this process, with its own DynamoDB Local), connects and authenticates
// 1, 10 and 50 satellites over real sockets, and drives two workloads in a
// closed loop per connection for a fixed time:
//
//   - request/reply: request_script_package_manifest and wait for the reply
//     (an @connections post per message; the manifest is read from S3 once,
//     then from the instance's package cache, or every time with
//     -package-cache-bytes=0);
//   - heartbeat: heartbeat and wait until the backend has processed it (the
//     gateway reports the finished invocation; heartbeats have no reply).
//
// It prints messages/s, p50/p90/p99 round trip, errors and peak RSS. It is a
// benchmark, not a test: figures depend on the machine.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/simulator"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/packagecache"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each run drives load")
	warmup := flag.Duration("warmup", 3*time.Second, "unmeasured load before the first run (JIT of DynamoDB Local)")
	conns := flag.String("connections", "1,10,50", "comma-separated connection counts")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured runs to this file")
	workloads := flag.String("workloads", "request/reply,heartbeat", "comma-separated workloads")
	cacheSeconds := flag.Int("connection-cache-seconds", int(app.DefaultBindingCacheTTL/time.Second), "the functions' CONNECTION_CACHE_SECONDS (0: read the connection record for every frame)")
	packageCache := flag.Int("package-cache-bytes", packagecache.DefaultMaxBytes, "the functions' PACKAGE_CACHE_BYTES (0: read the manifest from S3 for every request)")
	flag.Parse()
	counts, err := parseCounts(*conns)
	if err != nil {
		fail(err)
	}
	maxConns := counts[len(counts)-1]

	b := &bench{waiters: map[string]chan struct{}{}}
	stack, err := localstack.Start(context.Background(), localstack.Options{
		OnInvoke:    b.onInvoke,
		FunctionEnv: map[string]string{"CONNECTION_CACHE_SECONDS": strconv.Itoa(*cacheSeconds), "PACKAGE_CACHE_BYTES": strconv.Itoa(*packageCache)},
	})
	if err != nil {
		fail(err)
	}
	defer stack.Stop()
	b.stack = stack
	fmt.Fprintf(os.Stderr, "loadtest: seeding %d satellites ...\n", maxConns)
	if err := b.seed(maxConns); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "loadtest: warming up for %s ...\n", *warmup)
	if _, err := b.run(10, requestReply, *warmup); err != nil {
		fail(err)
	}

	fmt.Printf("Local stack load test: %s per run, closed loop per connection, CONNECTION_CACHE_SECONDS=%d, PACKAGE_CACHE_BYTES=%d, %s\n\n", *duration, *cacheSeconds, *packageCache, machine())
	fmt.Printf("| workload | connections | messages/s | p50 ms | p90 ms | p99 ms | errors | peak RSS stack MB | peak RSS DynamoDB Local MB |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|\n")
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	for _, name := range strings.Split(*workloads, ",") {
		w := workload(strings.TrimSpace(name))
		if w != requestReply && w != heartbeat {
			fail(fmt.Errorf("-workloads: unknown %q", name))
		}
		for _, n := range counts {
			resetPeakRSS(os.Getpid())
			resetPeakRSS(stack.DynamoDBPid)
			r, err := b.run(n, w, *duration)
			if err != nil {
				fail(err)
			}
			fmt.Printf("| %s | %d | %.0f | %.2f | %.2f | %.2f | %d | %d | %d |\n", w, n, r.rate, r.p(50), r.p(90), r.p(99), r.errors,
				peakRSSMB(os.Getpid()), peakRSSMB(stack.DynamoDBPid))
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadtest:", err)
	os.Exit(1)
}

func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-connections: %q is not a positive count", f)
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out, nil
}

type workload string

const (
	requestReply workload = "request/reply"
	heartbeat    workload = "heartbeat"
)

type bench struct {
	stack    *localstack.Stack
	creds    []cred
	lockfile string

	mu      sync.Mutex
	waiters map[string]chan struct{} // connectionId -> heartbeat processed
}

type cred struct{ id, token string }

// onInvoke wakes the client whose heartbeat the backend finished.
func (b *bench) onInvoke(inv gateway.Invocation) {
	if inv.Route != "$default" {
		return
	}
	b.mu.Lock()
	ch, ok := b.waiters[inv.ConnectionID]
	b.mu.Unlock()
	if ok {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (b *bench) seed(n int) error {
	ctx := context.Background()
	tok, err := token.New()
	if err != nil {
		return err
	}
	hash, err := token.Hash(tok)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("sat-load-%03d", i)
		if err := b.stack.Registry.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: id, Region: "bench", TokenHash: hash, CreatedAt: time.Now()}); err != nil {
			return err
		}
		b.creds = append(b.creds, cred{id, tok})
	}
	integrity, err := b.stack.Publisher.PutBlob(ctx, []byte("export const x = 1;\n"))
	if err != nil {
		return err
	}
	b.lockfile, err = b.stack.Publisher.PutManifest(ctx, []satellite.ManifestEntry{{Name: "lib", Version: "1.0.0", Integrity: integrity}})
	return err
}

type result struct {
	rate   float64
	rtts   []time.Duration
	errors int64
}

func (r result) p(q int) float64 {
	if len(r.rtts) == 0 {
		return 0
	}
	i := (len(r.rtts)*q + 99) / 100
	if i > 0 {
		i--
	}
	return float64(r.rtts[i].Microseconds()) / 1000
}

type client struct {
	conn *websocket.Conn
	id   string // connectionId
	wake chan struct{}
}

// connect opens n authenticated connections.
func (b *bench) connect(n int) ([]*client, error) {
	ctx := context.Background()
	clients := make([]*client, n)
	for i := 0; i < n; i++ {
		conn, _, err := websocket.Dial(ctx, simulator.SatelliteURL(b.stack.CoreURL), nil)
		if err != nil {
			return nil, err
		}
		c := &client{conn: conn, wake: make(chan struct{}, 1)}
		frame, _ := json.Marshal(map[string]string{"type": "authenticate", "clientId": b.creds[i].id, "token": b.creds[i].token})
		if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
			return nil, err
		}
		_, reply, err := conn.Read(ctx)
		if err != nil || !strings.Contains(string(reply), `"authenticated"`) {
			return nil, fmt.Errorf("authenticate %s: %v %s", b.creds[i].id, err, reply)
		}
		sat, _, err := b.stack.Registry.Satellite(ctx, b.creds[i].id)
		if err != nil {
			return nil, err
		}
		c.id = sat.ConnectionID
		b.mu.Lock()
		b.waiters[c.id] = c.wake
		b.mu.Unlock()
		clients[i] = c
	}
	return clients, nil
}

func (b *bench) run(n int, w workload, d time.Duration) (result, error) {
	clients, err := b.connect(n)
	if err != nil {
		return result{}, err
	}
	defer func() {
		for _, c := range clients {
			b.mu.Lock()
			delete(b.waiters, c.id)
			b.mu.Unlock()
			_ = c.conn.Close(websocket.StatusNormalClosure, "")
		}
		for b.stack.Gateway.Connections() > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var (
		mu     sync.Mutex
		rtts   []time.Duration
		errs   atomic.Int64
		wg     sync.WaitGroup
		frame  []byte
		expect string
	)
	switch w {
	case requestReply:
		frame, _ = json.Marshal(map[string]string{"type": "request_script_package_manifest", "lockfileHash": b.lockfile})
		expect = `"script_package_manifest"`
	case heartbeat:
		frame, _ = json.Marshal(map[string]any{"type": "heartbeat", "version": "bench", "uptimeSeconds": 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := c.conn.Write(context.Background(), websocket.MessageText, frame); err != nil {
					errs.Add(1)
					return
				}
				rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
				if w == requestReply {
					_, reply, err := c.conn.Read(rctx)
					if err != nil || !strings.Contains(string(reply), expect) {
						errs.Add(1)
					}
				} else {
					select {
					case <-c.wake:
					case <-rctx.Done():
						errs.Add(1)
					}
				}
				rcancel()
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			rtts = append(rtts, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	return result{rate: float64(len(rtts)) / elapsed.Seconds(), rtts: rtts, errors: errs.Load()}, nil
}

// resetPeakRSS restarts a process's peak resident size (Linux 4.0+); where
// that is not allowed the peak is over the process's lifetime.
func resetPeakRSS(pid int) {
	if pid > 0 {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	}
}

// peakRSSMB reads VmHWM, the peak resident set size.
func peakRSSMB(pid int) int {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kb / 1024
		}
	}
	return 0
}

func machine() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	cores := strings.Count(string(b), "processor\t:")
	return fmt.Sprintf("%d cores", cores)
}
