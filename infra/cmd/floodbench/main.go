// Command floodbench measures what one misbehaving client costs the local
// stack, over real sockets: an authenticated satellite pipelines heartbeats
// and never reads (a half-open client), while other satellites
// authenticate. It prints the stack's resident memory before, at its peak
// and after the flooding client is closed, how many of its frames were
// handled while it was open, and the other satellites' authentication
// latency. It is a benchmark, not a test: figures depend on the machine.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
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
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

func main() {
	frames := flag.Int("frames", 2000, "heartbeats the flooding client pipelines")
	inFlight := flag.Int("max-in-flight", 0, "the gateway's bound on frames of one connection handled at once (its default when 0)")
	others := flag.Int("others", 5, "authentications by other satellites during the flood")
	settle := flag.Duration("settle", 10*time.Second, "how long to watch memory after the flooding client is closed")
	flag.Parse()
	if err := run(*frames, *inFlight, *others, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "floodbench:", err)
		os.Exit(1)
	}
}

func run(frames, inFlight, others int, settle time.Duration) error {
	ctx := context.Background()
	// Frames handled per connection; the flooding client's is the largest.
	var mu sync.Mutex
	perConnection := map[string]int64{}
	handled := func() (most int64) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range perConnection {
			most = max(most, n)
		}
		return most
	}
	stack, err := localstack.Start(ctx, localstack.Options{MaxInFlight: inFlight, OnInvoke: func(inv gateway.Invocation) {
		if inv.Route == "$default" {
			mu.Lock()
			perConnection[inv.ConnectionID]++
			mu.Unlock()
		}
	}})
	if err != nil {
		return err
	}
	defer stack.Stop()
	// What a satellite configured with the stack's core URL opens.
	satelliteURL := simulator.SatelliteURL(stack.CoreURL)

	create := func(id string) (string, error) {
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
	// Warm up with a few authentications, then take the baseline.
	for i := range 3 {
		id := fmt.Sprintf("sat-warm-%d", i)
		tok, err := create(id)
		if err != nil {
			return err
		}
		c, _, err := authenticate(ctx, satelliteURL, id, tok)
		if err != nil {
			return err
		}
		_ = c.CloseNow()
	}
	time.Sleep(time.Second)
	baseline := rssMB()

	floodTok, err := create("sat-flood")
	if err != nil {
		return err
	}
	flood, _, err := authenticate(ctx, satelliteURL, "sat-flood", floodTok)
	if err != nil {
		return err
	}
	var peak atomic.Int64
	stopSampling := sample(&peak)
	before := handled() // its authenticate
	written := make(chan int, 1)
	go func() {
		n := 0
		for ; n < frames; n++ {
			frame := []byte(`{"type":"heartbeat","version":"1.0.0","uptimeSeconds":` + strconv.Itoa(n) + `}`)
			if flood.Write(ctx, websocket.MessageText, frame) != nil {
				break
			}
		}
		written <- n
	}()

	var latencies []float64
	for i := range others {
		id := fmt.Sprintf("sat-other-%d", i)
		tok, err := create(id)
		if err != nil {
			return err
		}
		c, d, err := authenticate(ctx, satelliteURL, id, tok)
		if err != nil {
			return err
		}
		_ = c.CloseNow()
		latencies = append(latencies, float64(d)/float64(time.Millisecond))
	}
	sort.Float64s(latencies)
	handledOpen := handled() - before
	_ = flood.CloseNow()
	closedAt := time.Now()
	sent := <-written
	stopSampling()
	fmt.Printf("flooding client: %d heartbeats pipelined, %d handled while it was open, never reading\n", sent, handledOpen)
	fmt.Printf("other satellites' authentication during the flood: p50 %.1f ms, max %.1f ms (%d)\n", latencies[len(latencies)/2], latencies[len(latencies)-1], len(latencies))
	fmt.Printf("\n| moment | stack RSS MB | live Go heap MB | goroutines |\n|---|---|---|---|\n")
	fmt.Printf("| before | %d | | |\n", baseline)
	fmt.Printf("| peak during the flood | %d | | |\n", peak.Load())
	for _, at := range []time.Duration{time.Second, settle} {
		time.Sleep(time.Until(closedAt.Add(at)))
		rss := rssMB()
		runtime.GC() // what is still reachable, not what the collector has yet to visit
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("| %s after close | %d | %d | %d |\n", at, rss, ms.HeapAlloc>>20, runtime.NumGoroutine())
	}
	fmt.Printf("\nframes handled after the client closed: %d\n", handled()-before-handledOpen)
	return nil
}

// sample records the peak resident memory until the returned func is called.
func sample(peak *atomic.Int64) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if r := rssMB(); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// rssMB is this process's resident set in MiB (the stack runs in it).
func rssMB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb >> 10
		}
	}
	return -1
}

// authenticate opens a socket, authenticates and returns it with how long
// the authenticated reply took.
func authenticate(ctx context.Context, url, id, tok string) (*websocket.Conn, time.Duration, error) {
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, 0, err
	}
	frame, _ := json.Marshal(map[string]string{"type": "authenticate", "clientId": id, "token": tok})
	start := time.Now()
	if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
		return nil, 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_, reply, err := c.Read(rctx)
	if err != nil {
		return nil, 0, err
	}
	if !strings.Contains(string(reply), `"authenticated"`) {
		return nil, 0, fmt.Errorf("authentication answered %s", reply)
	}
	return c, time.Since(start), nil
}
