// Command sweepbench measures the heartbeat sweep's passes over a large fleet
// in DynamoDB Local: it seeds satellites through the registry (each
// created, connected, authenticated and its connected edge confirmed, as the
// message function leaves them), makes some of them stale, and runs the
// minute's first (full) pass with the budget a pass has in an invocation
// (sweep.PassEvery until the next pass's slot, then DeadlineMargin for the
// work in flight), then later passes until nothing stale is left, then one
// later pass in the steady state. It prints how long each pass took, what
// it did, and what it read: requests, items and capacity units, with the
// online gauge (which counts the whole live index every sweep.OnlineEvery)
// apart. It is a benchmark, not a test: figures depend on the machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

func main() {
	fleet := flag.Int("satellites", 100_000, "satellites connected")
	stale := flag.Int("stale", 1_000, "of them, how many stopped heartbeating")
	workers := flag.Int("seed-workers", 4, "parallel seeding workers")
	budget := flag.Duration("pass-budget", sweep.PassEvery, "how long a pass may start work (until the next pass's slot); DeadlineMargin is added for the work in flight")
	flag.Parse()
	if err := run(*fleet, *stale, *workers, *budget); err != nil {
		fmt.Fprintln(os.Stderr, "sweepbench:", err)
		os.Exit(1)
	}
}

// countingBus stands in for EventBridge: it counts PutEvents requests and
// their entries.
type countingBus struct{ requests, events atomic.Int64 }

func (b *countingBus) Emit(ctx context.Context, e satellite.LifecycleEvent) error {
	return b.EmitBatch(ctx, []satellite.LifecycleEvent{e})[0]
}

func (b *countingBus) EmitBatch(_ context.Context, es []satellite.LifecycleEvent) []error {
	for start := 0; start < len(es); start += satellite.MaxLifecycleBatch {
		b.requests.Add(1)
	}
	b.events.Add(int64(len(es)))
	return make([]error, len(es))
}

func run(fleet, stale, workers int, budget time.Duration) error {
	ctx := context.Background()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	db, err := localaws.StartDynamoDB(ctx, localaws.DynamoDBOptions{})
	if err != nil {
		return err
	}
	defer db.Stop()
	tables, err := tpl.Tables()
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, t := range tables {
		names[t.LogicalID] = t.LogicalID
	}
	client := localaws.DynamoDBClient(db.Endpoint)
	if err := localaws.CreateTables(ctx, client, tpl, names); err != nil {
		return err
	}

	// The sweep runs at t0, in the first minute of a sweep.OnlineEvery
	// period (so it takes the online gauge too); stale satellites
	// heartbeated last ten minutes before it, the others one second before.
	t0 := time.Now().Truncate(sweep.OnlineEvery).Add(30 * time.Second)
	calls := &testenv.Calls{}
	bus := &countingBus{}
	cfg := app.Config{
		Region:           localaws.Region,
		SatellitesTable:  names["SatellitesTable"],
		ConnectionsTable: names["ConnectionsTable"],
		ResultsTable:     names["ResultsTable"],
		ManagementURL:    "http://127.0.0.1:1/unused",
		ResultRetention:  24 * time.Hour,
		RepublishAfter:   sweep.DefaultRepublishAfter,
		PushConcurrency:  16,
	}
	a, err := app.New(cfg, localaws.AWSConfig(), app.Options{
		Now:        func() time.Time { return t0 },
		Log:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Lifecycle:  bus,
		APIOptions: []func(*middleware.Stack) error{calls.APIOption},
		Endpoints:  app.Endpoints{DynamoDB: db.Endpoint},
	})
	if err != nil {
		return err
	}
	reg := a.Registry

	fmt.Printf("seeding %d satellites (%d stale) with %d workers...\n", fleet, stale, workers)
	start := time.Now()
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		done   atomic.Int64
		first  error
		once   sync.Once
	)
	const batch = 500
	work := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range work {
				if err := seed(ctx, reg, from, min(fleet, from+batch), stale, t0); err != nil {
					failed.Add(1)
					once.Do(func() { first = err })
				}
				if n := done.Add(batch); n%20_000 == 0 {
					fmt.Printf("  %d seeded (%s)\n", n, time.Since(start).Round(time.Second))
				}
			}
		}()
	}
	for from := 0; from < fleet; from += batch {
		work <- from
	}
	close(work)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d batches not seeded, first: %w", n, first)
	}
	fmt.Printf("seeded in %s\n", time.Since(start).Round(time.Second))

	// The fleet index backfill runs once, in a stack's first sweeps; seeded
	// satellites carry their entry already, so it finds nothing to add but
	// reads the whole table. Run it to its end first, as on a stack past
	// its first sweeps (whose cold instances still read that it is done).
	calls.Reset()
	start, steps := time.Now(), 0
	for done := false; !done; steps++ {
		step, err := reg.IndexLegacySatellites(ctx, t0)
		if err != nil {
			return fmt.Errorf("fleet index backfill: %w", err)
		}
		done = step.Done
	}
	fmt.Printf("fleet index backfill over the seeded table: %d steps, %s, %.1f read units\n\n",
		steps, time.Since(start).Round(time.Millisecond), calls.Capacity().Read)
	var published, events int64

	// Passes as an invocation runs them, all at t0 (the stale satellites
	// stay stale): the full one, later ones while work was deferred, then
	// one in the steady state.
	over := false
	for i := 0; ; i++ {
		full := i == 0
		calls.Reset()
		passCtx, cancel := context.WithTimeout(ctx, budget+sweep.DeadlineMargin)
		began := time.Now()
		var r sweep.Report
		if full {
			r, err = a.Sweep.Sweep(passCtx)
		} else {
			r, err = a.Sweep.StalePass(passCtx)
		}
		took := time.Since(began)
		cancel()
		if err != nil {
			return fmt.Errorf("pass %d: %w", i+1, err)
		}
		var gauge testenv.Capacity
		countQueries := 0
		for _, c := range calls.All() {
			if q, ok := c.Input.(*dynamodb.QueryInput); ok && q.Select == types.SelectCount {
				countQueries++
				gauge = gauge.Add(c.Capacity)
			}
		}
		units := calls.Capacity()
		kind := "later pass"
		if full {
			kind = "full pass (the minute's first)"
		}
		steady := r.Stale == 0 && r.Deferred == 0
		if steady && !full {
			kind = "later pass, steady state"
		}
		fmt.Printf("%s at %s (budget %s): %s\n", kind, t0.Format(time.TimeOnly), budget, took.Round(time.Millisecond))
		fmt.Printf("  stale %d, heartbeat_lost %d, deferred %d, online %d, indexed %d\n", r.Stale, r.HeartbeatLost, r.Deferred, r.Online, r.Indexed)
		fmt.Printf("  DynamoDB: %d requests, %d items read, %.1f read units, %.1f write units\n",
			calls.Count("DynamoDB")-countQueries, calls.ItemsRead(), units.Read-gauge.Read, units.Write)
		if countQueries > 0 {
			fmt.Printf("  online gauge (every %s): %d count queries, %.1f read units\n", sweep.OnlineEvery, countQueries, gauge.Read)
		}
		fmt.Printf("  PutEvents: %d requests for %d events\n", bus.requests.Load()-published, bus.events.Load()-events)
		published, events = bus.requests.Load(), bus.events.Load()
		over = over || took > budget+sweep.DeadlineMargin
		if steady && !full {
			break
		}
		if i == 20 {
			return fmt.Errorf("still stale satellites after %d passes", i+1)
		}
	}
	if over {
		fmt.Printf("a pass ran past its budget and DeadlineMargin (%s)\n", budget+sweep.DeadlineMargin)
	}
	return nil
}

// seed makes satellites [from, to) connected, as an authentication leaves
// them: the first stale ones heartbeated last ten minutes before t0, the
// others one second before it.
func seed(ctx context.Context, reg *dynamo.Registry, from, to, stale int, t0 time.Time) error {
	byTime := map[time.Time][]satellite.Satellite{}
	for i := from; i < to; i++ {
		at := t0.Add(-time.Second)
		if i < stale {
			at = t0.Add(-10 * time.Minute)
		}
		id := fmt.Sprintf("sat-%06d", i)
		byTime[at] = append(byTime[at], satellite.Satellite{ID: id, Name: "Satellite " + id, Region: "eu-central-1", TokenHash: "bench", CreatedAt: at})
	}
	for at, sats := range byTime {
		if err := reg.SeedConnected(ctx, sats, at); err != nil {
			return err
		}
	}
	return nil
}
