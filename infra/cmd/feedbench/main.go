// Command feedbench measures the results feed on the local stack: from the
// moment a satellite sends a result frame (through the core URL, as a real
// satellite does) to the moment the result is receivable on the feed queue
// by a consumer long-polling it with the AWS SDK. It starts the stack (in
// memory, functions in this process, its own DynamoDB Local), connects
// -satellites satellites, each sending a result every -every for
// -duration, and prints p50/p90/p99/max latency, results lost, and how
// many results a queue message carried. It is a benchmark, not a test:
// figures depend on the machine.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/simulator"
	"github.com/checkstack/satellite-backend/shared/resultsfeed"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

func main() {
	sats := flag.Int("satellites", 20, "satellites sending results")
	every := flag.Duration("every", time.Second, "each satellite sends a result this often")
	duration := flag.Duration("duration", 30*time.Second, "how long results are sent")
	flag.Parse()

	ctx := context.Background()
	stack, err := localstack.Start(ctx, localstack.Options{})
	if err != nil {
		fail(err)
	}
	defer stack.Stop()

	b := &bench{sent: map[string]time.Time{}, base: time.Now().UTC().Add(-time.Minute).Truncate(time.Second)}
	conns := make([]*websocket.Conn, *sats)
	for i := range conns {
		if conns[i], err = connect(ctx, stack, fmt.Sprintf("bench-%03d", i)); err != nil {
			fail(err)
		}
	}
	fmt.Fprintf(os.Stderr, "feedbench: %d satellites, a result every %s each, for %s ...\n", *sats, *every, *duration)

	consumerCtx, stopConsumer := context.WithCancel(ctx)
	consumed := make(chan struct{})
	go func() { defer close(consumed); b.consume(consumerCtx, stack) }()

	var wg sync.WaitGroup
	end := time.Now().Add(*duration)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the satellites over the interval.
			time.Sleep(time.Duration(i) * *every / time.Duration(len(conns)))
			tick := time.NewTicker(*every)
			defer tick.Stop()
			for n := 0; time.Now().Before(end); n++ {
				b.send(ctx, c, fmt.Sprintf("bench-%03d", i), n)
				<-tick.C
			}
		}()
	}
	wg.Wait()
	// What was sent has 30 s to arrive.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && b.pending() > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	stopConsumer()
	<-consumed

	b.mu.Lock()
	defer b.mu.Unlock()
	lat := b.latencies
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	perMessage := 0.0
	if b.messages > 0 {
		perMessage = float64(len(lat)) / float64(b.messages)
	}
	fmt.Printf("Results feed, local stack: %d satellites, a result every %s each, %s; %d CPUs, %s\n\n", *sats, *every, *duration, runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH)
	fmt.Printf("| results sent | received | lost | p50 ms | p90 ms | p99 ms | max ms | results a message |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %d | %d | %.0f | %.0f | %.0f | %.0f | %.1f |\n", b.total, len(lat), len(b.sent), p(0.50), p(0.90), p(0.99), p(1), perMessage)
	if len(b.sent) > 0 {
		os.Exit(1)
	}
}

type bench struct {
	// base is the first result's executedAt; each satellite's n-th result
	// is base + n ms.
	base      time.Time
	mu        sync.Mutex
	sent      map[string]time.Time // satellite|executedAt -> when the frame left
	total     int
	latencies []time.Duration
	messages  int
}

func (b *bench) pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sent)
}

// send sends one result; its executedAt (unique per satellite) names it.
func (b *bench) send(ctx context.Context, c *websocket.Conn, satID string, n int) {
	executedAt := b.base.Add(time.Duration(n) * time.Millisecond).Format(time.RFC3339Nano)
	frame, _ := json.Marshal(map[string]any{"type": "result", "configId": "cfg-bench", "systemId": "sys-bench", "status": "healthy",
		"latencyMs": 12, "executedAt": executedAt, "result": map[string]any{"status": "healthy", "latencyMs": 12, "metadata": map[string]any{"connected": true}}})
	b.mu.Lock()
	b.sent[satID+"|"+executedAt] = time.Now()
	b.total++
	b.mu.Unlock()
	if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
		fail(err)
	}
}

// consume long-polls the feed as the core would, deleting what it got.
func (b *bench) consume(ctx context.Context, stack *localstack.Stack) {
	client := localaws.SQSClient(stack.SQSEndpoint)
	for ctx.Err() == nil {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(stack.ResultsFeedQueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "feedbench: receive:", err)
			}
			continue
		}
		now := time.Now()
		for _, m := range out.Messages {
			var doc resultsfeed.Message
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &doc); err != nil {
				fail(err)
			}
			b.mu.Lock()
			b.messages++
			for _, e := range doc.Results {
				key := e.SatelliteID + "|" + e.ExecutedAt
				if t, ok := b.sent[key]; ok {
					b.latencies = append(b.latencies, now.Sub(t))
					delete(b.sent, key)
				}
			}
			b.mu.Unlock()
			_, _ = client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(stack.ResultsFeedQueueURL), ReceiptHandle: m.ReceiptHandle})
		}
	}
}

// connect creates a satellite assigned the bench check and authenticates
// it through the core URL.
func connect(ctx context.Context, stack *localstack.Stack, id string) (*websocket.Conn, error) {
	tok, err := token.New()
	if err != nil {
		return nil, err
	}
	hash, err := token.Hash(tok)
	if err != nil {
		return nil, err
	}
	if err := stack.Registry.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: id, Region: "bench", TokenHash: hash, CreatedAt: time.Now()}); err != nil {
		return nil, err
	}
	a, err := satellite.ParseAssignment([]byte(`{"configId":"cfg-bench","systemId":"sys-bench","strategyId":"http","config":{},"intervalSeconds":1}`))
	if err != nil {
		return nil, err
	}
	if err := stack.Registry.ReplaceAssignments(ctx, id, []satellite.Assignment{a}); err != nil {
		return nil, err
	}
	c, _, err := websocket.Dial(ctx, simulator.SatelliteURL(stack.CoreURL), nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	auth, _ := json.Marshal(map[string]string{"type": "authenticate", "clientId": id, "token": tok})
	if err := c.Write(ctx, websocket.MessageText, auth); err != nil {
		return nil, err
	}
	_, reply, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	var f map[string]any
	if json.Unmarshal(reply, &f) != nil || f["type"] != "authenticated" {
		return nil, fmt.Errorf("%s: authenticate answered %s", id, reply)
	}
	// Keep reading (replies, keepalives) so the socket's buffers drain.
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	return c, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "feedbench:", err)
	os.Exit(1)
}
