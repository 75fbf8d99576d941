// Command authbench measures what refusing authentication costs, through
// the local stack over real sockets: one socket pipelines wrong tokens for
// a satellite (as a guesser would) while another satellite authenticates
// with its right token. It prints the bcrypt verifications the wrong tokens
// cost, how many frames were processed, and the legitimate satellite's
// authentication latency. It is a benchmark, not a test: latencies depend
// on the machine.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
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
	attempts := flag.Int("attempts", 100, "wrong tokens pipelined on one socket")
	rounds := flag.Int("rounds", 5, "rounds (each with a fresh attacker socket and a legitimate authentication)")
	flag.Parse()
	if err := run(*attempts, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "authbench:", err)
		os.Exit(1)
	}
}

func run(attempts, rounds int) error {
	ctx := context.Background()
	var invocations atomic.Int64
	stack, err := localstack.Start(ctx, localstack.Options{OnInvoke: func(inv gateway.Invocation) {
		if inv.Route == "$default" {
			invocations.Add(1)
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
	if _, err := create("sat-target"); err != nil {
		return err
	}
	// Warm up (DynamoDB Local compiles its hot paths on first use) and
	// measure a legitimate authentication with nothing else going on.
	var alone []float64
	for i := range 6 {
		tok, err := create(fmt.Sprintf("sat-alone-%d", i))
		if err != nil {
			return err
		}
		d, err := authenticate(ctx, satelliteURL, fmt.Sprintf("sat-alone-%d", i), tok)
		if err != nil {
			return err
		}
		if i > 0 {
			alone = append(alone, float64(d)/float64(time.Millisecond))
		}
	}
	sort.Float64s(alone)
	fmt.Printf("legitimate authentication alone: p50 %.1f ms, max %.1f ms (bcrypt cost %d)\n\n", alone[len(alone)/2], alone[len(alone)-1], token.Cost)

	fmt.Printf("| round | wrong tokens sent | frames processed | bcrypt verifications | legitimate authentication ms |\n|---|---|---|---|---|\n")
	var latencies []float64
	var worstBcrypt int64
	for round := 1; round <= rounds; round++ {
		legitID := fmt.Sprintf("sat-legit-%d", round)
		legitToken, err := create(legitID)
		if err != nil {
			return err
		}
		// Let the previous round's frames drain before counting.
		time.Sleep(200 * time.Millisecond)
		beforeBcrypt, beforeInvocations := token.Verifications(), invocations.Load()

		attacker, _, err := websocket.Dial(ctx, satelliteURL, nil)
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range attempts {
				frame, _ := json.Marshal(map[string]string{"type": "authenticate", "clientId": "sat-target", "token": "csat_" + fmt.Sprintf("%043d", i)})
				if attacker.Write(ctx, websocket.MessageText, frame) != nil {
					return // closed after auth_failed
				}
			}
		}()
		latency, err := authenticate(ctx, satelliteURL, legitID, legitToken)
		if err != nil {
			return err
		}
		wg.Wait()
		_ = attacker.CloseNow()
		// The attacker's frames already accepted by the gateway are still
		// being processed: wait until they are done.
		deadline := time.Now().Add(30 * time.Second)
		last := int64(-1)
		for n := invocations.Load(); n != last && time.Now().Before(deadline); n = invocations.Load() {
			last = n
			time.Sleep(300 * time.Millisecond)
		}
		bcrypts := token.Verifications() - beforeBcrypt - 1 // less the legitimate one
		worstBcrypt = max(worstBcrypt, bcrypts)
		latencies = append(latencies, float64(latency)/float64(time.Millisecond))
		fmt.Printf("| %d | %d | %d | %d | %.1f |\n", round, attempts, invocations.Load()-beforeInvocations-1, bcrypts, latencies[len(latencies)-1])
	}
	sort.Float64s(latencies)
	fmt.Printf("\nworst round: %d bcrypt verifications for %d wrong tokens on one socket; legitimate authentication p50 %.1f ms, max %.1f ms\n",
		worstBcrypt, attempts, latencies[len(latencies)/2], latencies[len(latencies)-1])
	return nil
}

// authenticate opens a socket, authenticates and returns how long the
// authenticated reply took.
func authenticate(ctx context.Context, url, id, tok string) (time.Duration, error) {
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return 0, err
	}
	defer c.CloseNow()
	frame, _ := json.Marshal(map[string]string{"type": "authenticate", "clientId": id, "token": tok})
	start := time.Now()
	if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_, reply, err := c.Read(rctx)
	if err != nil {
		return 0, err
	}
	if !strings.Contains(string(reply), `"authenticated"`) {
		return 0, fmt.Errorf("legitimate authentication answered %s", reply)
	}
	return time.Since(start), nil
}
