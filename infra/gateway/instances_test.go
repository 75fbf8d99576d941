package gateway_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/gateway"
)

// counter is a function whose every instance has its own memory: a count of
// the events it served, and a flag that catches two events at once.
type counter struct {
	mu      sync.Mutex
	started int
	closed  int
	busy    map[string]*atomic.Int32
	overlap atomic.Bool
	hold    chan struct{} // when set, events wait on it
}

func newCounter() *counter { return &counter{busy: map[string]*atomic.Int32{}} }

func (c *counter) start(_ context.Context, id string) (gateway.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started++
	b := &atomic.Int32{}
	c.busy[id] = b
	return &counterInstance{c: c, id: id, busy: b}, nil
}

type counterInstance struct {
	c      *counter
	id     string
	busy   *atomic.Int32
	served int // this instance's memory
}

func (i *counterInstance) Invoke(ctx context.Context, _ []byte) ([]byte, error) {
	if i.busy.Add(1) > 1 {
		i.c.overlap.Store(true)
	}
	defer i.busy.Add(-1)
	if i.c.hold != nil {
		select {
		case <-i.c.hold:
		case <-ctx.Done():
			return nil, &gateway.FunctionError{Type: "Sandbox.Timedout", Message: "Task timed out"}
		}
	}
	i.served++
	return []byte(`{"instance":"` + i.id + `","served":` + strconv.Itoa(i.served) + `}`), nil
}

func (i *counterInstance) Close() {
	i.c.mu.Lock()
	i.c.closed++
	i.c.mu.Unlock()
}

func invokeFrom(t *testing.T, in *gateway.Instances, conn string) gateway.Dispatch {
	t.Helper()
	d := &gateway.Dispatch{Connection: conn}
	if _, err := in.Invoke(gateway.WithDispatch(context.Background(), d), "Fn", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	return *d
}

func TestInstancesSendAConnectionsFramesToDifferentInstances(t *testing.T) {
	c := newCounter()
	in := gateway.NewInstances(gateway.InstanceConfig{Max: 3}, map[string]gateway.StartInstance{"Fn": c.start})
	defer in.Stop()

	var got []gateway.Dispatch
	for range 6 {
		got = append(got, invokeFrom(t, in, "conn-a"))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Instance == got[i-1].Instance {
			t.Errorf("frames %d and %d both went to %s", i-1, i, got[i].Instance)
		}
	}
	// The second frame cannot reuse the first's instance, so it starts one:
	// a cold start in the middle of the connection.
	if !got[0].Cold || !got[1].Cold {
		t.Errorf("first two frames cold = %v, %v; want a cold start each", got[0].Cold, got[1].Cold)
	}
	if c.started != 2 {
		t.Errorf("started %d instances for one sequential connection, want 2 (alternating)", c.started)
	}
	// Another connection gets the least recently used instance, and its
	// own next frame avoids it.
	b1, b2 := invokeFrom(t, in, "conn-b"), invokeFrom(t, in, "conn-b")
	if b1.Instance == b2.Instance {
		t.Errorf("conn-b's frames both went to %s", b1.Instance)
	}
}

func TestInstancesServeOneEventAtATimeUpToTheirConcurrency(t *testing.T) {
	c := newCounter()
	c.hold = make(chan struct{})
	in := gateway.NewInstances(gateway.InstanceConfig{Max: 2}, map[string]gateway.StartInstance{"Fn": c.start})
	defer in.Stop()

	var wg sync.WaitGroup
	results := make(chan gateway.Dispatch, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &gateway.Dispatch{Connection: "conn-" + strconv.Itoa(i)}
			if _, err := in.Invoke(gateway.WithDispatch(context.Background(), d), "Fn", nil); err != nil {
				t.Error(err)
			}
			results <- *d
		}()
	}
	// Wait until both instances are busy, then let every event through.
	for in.Running()["Fn"] < 2 {
		time.Sleep(time.Millisecond)
	}
	close(c.hold)
	wg.Wait()
	close(results)

	if c.overlap.Load() {
		t.Error("an instance served two events at once")
	}
	if c.started != 2 {
		t.Errorf("started %d instances, want the concurrency of 2", c.started)
	}
	n := 0
	for range results {
		n++
	}
	if n != 5 {
		t.Errorf("%d events served, want 5: events beyond the concurrency wait, they are not lost", n)
	}
}

func TestInstancesAreReclaimedWhenIdle(t *testing.T) {
	c := newCounter()
	in := gateway.NewInstances(gateway.InstanceConfig{Max: 2, IdleTimeout: 20 * time.Millisecond}, map[string]gateway.StartInstance{"Fn": c.start})
	defer in.Stop()

	if d := invokeFrom(t, in, "conn"); !d.Cold {
		t.Fatal("first event was warm")
	}
	for in.Running()["Fn"] > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if d := invokeFrom(t, in, "conn"); !d.Cold {
		t.Error("event after the idle timeout met a warm instance; want a cold start")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed != 1 {
		t.Errorf("closed %d instances, want the reclaimed one", c.closed)
	}
}

func TestInstanceThatTimedOutIsNotReused(t *testing.T) {
	c := newCounter()
	c.hold = make(chan struct{})
	in := gateway.NewInstances(gateway.InstanceConfig{Max: 1}, map[string]gateway.StartInstance{"Fn": c.start})
	defer in.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := in.Invoke(ctx, "Fn", nil)
	var fe *gateway.FunctionError
	if !errors.As(err, &fe) || fe.Type != "Sandbox.Timedout" {
		t.Fatalf("err = %v, want Sandbox.Timedout", err)
	}
	close(c.hold)
	d := invokeFrom(t, in, "")
	if !d.Cold || d.Instance == "Fn#1" {
		t.Errorf("after a timeout the event went to %s (cold %v); want a new instance", d.Instance, d.Cold)
	}
}

func TestInstancesOfInProcessHandlersShareNothing(t *testing.T) {
	// Each instance is built by its own constructor call: a cache filled
	// on one instance is empty on the next.
	starts := map[string]gateway.StartInstance{"Fn": func(context.Context, string) (gateway.Instance, error) {
		seen := map[string]bool{}
		return gateway.NewInProcessInstance("Fn", func(_ context.Context, ev map[string]string) (bool, error) {
			was := seen[ev["k"]]
			seen[ev["k"]] = true
			return was, nil
		}), nil
	}}
	in := gateway.NewInstances(gateway.InstanceConfig{Max: 2}, starts)
	defer in.Stop()
	var got []string
	for range 3 {
		d := &gateway.Dispatch{Connection: "conn"}
		out, err := in.Invoke(gateway.WithDispatch(context.Background(), d), "Fn", []byte(`{"k":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(out))
	}
	if want := []string{"false", "false", "true"}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("cache hits = %v, want %v (two instances, each with its own memory)", got, want)
	}
}

func TestEventsWaitingForAnInstanceAreServedInArrivalOrder(t *testing.T) {
	var mu sync.Mutex
	var served []string
	hold := make(chan struct{})
	starts := map[string]gateway.StartInstance{"Fn": func(context.Context, string) (gateway.Instance, error) {
		return gateway.NewInProcessInstance("Fn", func(_ context.Context, ev map[string]string) (string, error) {
			<-hold
			mu.Lock()
			served = append(served, ev["n"])
			mu.Unlock()
			return ev["n"], nil
		}), nil
	}}
	in := gateway.NewInstances(gateway.InstanceConfig{Max: 1}, starts)
	defer in.Stop()

	var wg sync.WaitGroup
	invoke := func(n string) {
		defer wg.Done()
		if _, err := in.Invoke(context.Background(), "Fn", []byte(`{"n":"`+n+`"}`)); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go invoke("first")
	for in.Running()["Fn"] < 1 {
		time.Sleep(time.Millisecond)
	}
	want := []string{"first"}
	for i := range 6 {
		n := strconv.Itoa(i)
		want = append(want, n)
		wg.Add(1)
		go invoke(n)
		for in.Waiting()["Fn"] < i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	close(hold)
	wg.Wait()
	if got := strings.Join(served, ","); got != strings.Join(want, ",") {
		t.Errorf("served %s, want arrival order %s", got, strings.Join(want, ","))
	}
}
