package sweep_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/sweep"
)

// TestLostByThePassAfterItsDeadline runs four minutes of scheduled
// invocations, each delivered on time, over satellites with thresholds from
// 15 s to 2 min whose heartbeats stopped at different seconds, beside one
// that heartbeats every 15 s. Each stopped satellite is reported lost
// exactly once, by the first pass after its exact deadline: at most
// sweep.PassEvery after it. The one heartbeating is never reported.
func TestLostByThePassAfterItsDeadline(t *testing.T) {
	h := newHarness(t)
	type stopped struct {
		id       string
		deadline time.Time
	}
	var sats []stopped
	for i, threshold := range []time.Duration{15 * time.Second, 30 * time.Second, 0, 2 * time.Minute} {
		for j, off := range []time.Duration{time.Second, 6 * time.Second, 11 * time.Second, 14*time.Second + 999*time.Millisecond} {
			id := fmt.Sprintf("sat-%d-%d", i, j)
			at := h.t0.Add(off)
			h.connect(id, threshold, at)
			sats = append(sats, stopped{id, at.Add(satellite.Satellite{OfflineThreshold: threshold}.Threshold())})
		}
	}
	// The healthy one heartbeats at 7 s past every 15 s, as the sweep's
	// waits move the clock: each heartbeat lands before the pass that
	// follows it.
	healthy := h.connect("sat-healthy", 0, h.t0.Add(7*time.Second))
	next := h.t0.Add(22 * time.Second)
	beat := func() {
		for ; !next.After(h.clock.Now()); next = next.Add(15 * time.Second) {
			if _, err := h.reg.RecordHeartbeat(ctx, "sat-healthy", healthy, "1", nil, 0, next); err != nil {
				t.Fatal(err)
			}
		}
	}
	sleep := h.a.Sweep.Sleep
	h.a.Sweep.Sleep = func(ctx context.Context, d time.Duration) error {
		err := sleep(ctx, d)
		beat()
		return err
	}

	for m := range 4 {
		scheduled := h.t0.Add(time.Duration(m) * time.Minute)
		h.clock.Set(scheduled)
		beat()
		if err := h.a.Sweep.Run(ctx, scheduled); err != nil {
			t.Fatal(err)
		}
	}
	times := map[string][]time.Time{}
	for _, l := range h.lines() {
		if l.DetailType == "satellite.heartbeat_lost" {
			times[l.Detail.SatelliteID] = append(times[l.Detail.SatelliteID], l.Time)
		}
	}
	if got := times["sat-healthy"]; len(got) != 0 {
		t.Errorf("the satellite heartbeating every 15 s was reported lost at %v", got)
	}
	for _, s := range sats {
		// Passes run at t0 + 15 s k: the first strictly after the deadline.
		want := s.deadline.Truncate(sweep.PassEvery).Add(sweep.PassEvery)
		got := times[s.id]
		if len(got) != 1 || !got[0].Equal(want) {
			t.Errorf("%s, deadline %s: heartbeat_lost at %v, want once, by the pass at %s", s.id, s.deadline.Format("15:04:05.000"), got, want.Format(time.TimeOnly))
			continue
		}
		if late := got[0].Sub(s.deadline); late <= 0 || late > sweep.PassEvery {
			t.Errorf("%s: reported %s after its deadline, want within %s", s.id, late, sweep.PassEvery)
		}
	}
}

// deadlineStore records the deadline of the context each pass reads
// stale satellites with.
type deadlineStore struct {
	satellite.SweepStore
	mu    sync.Mutex
	left  []time.Duration // each pass's budget, as its context's deadline says
	calls int
}

func (d *deadlineStore) StaleSatellites(ctx context.Context, now time.Time) ([]satellite.Stale, error) {
	d.mu.Lock()
	d.calls++
	if deadline, ok := ctx.Deadline(); ok {
		d.left = append(d.left, time.Until(deadline)-sweep.DeadlineMargin)
	}
	d.mu.Unlock()
	return d.SweepStore.StaleSatellites(ctx, now)
}

// TestPassesFollowTheSchedule checks when an invocation's passes run, from
// the schedule's time: four 15 s apart when the event comes on time, the
// first at once and the slots still ahead when it comes late, one when it
// comes a whole minute late. Each pass starts no work after the next one's
// slot, the last none after the next invocation's first, so that passes
// never overlap unless EventBridge delivers late or twice.
func TestPassesFollowTheSchedule(t *testing.T) {
	for _, tc := range []struct {
		name  string
		late  time.Duration
		slept []time.Duration
		// budgets are the passes' budgets: until the next slot.
		budgets []time.Duration
	}{
		{"on time", 0, []time.Duration{15 * time.Second, 15 * time.Second, 15 * time.Second}, []time.Duration{15 * time.Second, 15 * time.Second, 15 * time.Second, 15 * time.Second}},
		{"20 s late", 20 * time.Second, []time.Duration{10 * time.Second, 15 * time.Second}, []time.Duration{10 * time.Second, 15 * time.Second, 15 * time.Second}},
		{"59 s late", 59 * time.Second, nil, []time.Duration{time.Second}},
		{"70 s late", 70 * time.Second, nil, []time.Duration{15 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			store := &deadlineStore{SweepStore: h.a.Sweep.Store}
			h.a.Sweep.Store = store
			scheduled := h.t0.Add(time.Minute)
			h.clock.Set(scheduled.Add(tc.late))
			invocation, cancel := context.WithTimeout(ctx, 75*time.Second)
			defer cancel()
			if err := h.a.Sweep.Handle(invocation, events.CloudWatchEvent{Time: scheduled}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(h.slept, tc.slept) {
				t.Errorf("waits between passes %v, want %v", h.slept, tc.slept)
			}
			if full := strings.Count(h.logs.String(), `"full":true`); full != 1 {
				t.Errorf("%d full passes, want 1", full)
			}
			if passes := strings.Count(h.logs.String(), `"msg":"sweep done"`); passes != len(tc.budgets) || store.calls != len(tc.budgets) {
				t.Fatalf("%d passes (%d reads of stale satellites), want %d", passes, store.calls, len(tc.budgets))
			}
			for i, budget := range store.left {
				// Real time passed since the pass began: its budget only shrank.
				if want := tc.budgets[i]; budget > want || budget < want-5*time.Second {
					t.Errorf("pass %d may start work for %s, want %s (until the next pass's slot)", i+1, budget.Round(time.Millisecond), want)
				}
			}
			if end := scheduled.Add(sweep.PassEvery * sweep.Passes); tc.late < time.Minute && h.clock.Now().After(end) {
				t.Errorf("last pass at %s, after the next invocation's first (%s)", h.clock.Now().Format(time.TimeOnly), end.Format(time.TimeOnly))
			}
		})
	}
}

// TestPassesStopBeforeTheInvocationsDeadline gives an invocation a deadline
// that leaves time for two passes: it runs them, stops before the third
// with a warning, and leaves the satellite that goes stale after the second
// to the next invocation's first pass.
func TestPassesStopBeforeTheInvocationsDeadline(t *testing.T) {
	h := newHarness(t)
	h.connect("sat-late", 0, h.t0.Add(-20*time.Second)) // deadline t0 + 25 s
	invocation, cancel := context.WithTimeout(ctx, sweep.DeadlineMargin+20*time.Second)
	defer cancel()
	if err := h.a.Sweep.Run(invocation, h.t0); err != nil {
		t.Fatal(err)
	}
	if want := []time.Duration{sweep.PassEvery}; !slices.Equal(h.slept, want) {
		t.Errorf("waits between passes %v, want %v: two passes, at t0 and t0 + 15 s", h.slept, want)
	}
	if passes := strings.Count(h.logs.String(), `"msg":"sweep done"`); passes != 2 {
		t.Errorf("%d passes, want 2", passes)
	}
	if !strings.Contains(h.logs.String(), `"msg":"sweep passes cut short by the invocation's deadline","passesLeft":2`) {
		t.Errorf("no warning that two passes were cut: %s", h.logs.String())
	}
	if got := h.lost()["sat-late"]; len(got) != 0 {
		t.Fatalf("lost %v before its deadline", got)
	}
	h.slept = nil
	h.clock.Set(h.t0.Add(time.Minute))
	next, cancel := context.WithTimeout(ctx, 75*time.Second)
	defer cancel()
	if err := h.a.Sweep.Run(next, h.t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := h.lost()["sat-late"]; len(got) != 1 {
		t.Errorf("next invocation: heartbeat_lost %v, want one", got)
	}
}
