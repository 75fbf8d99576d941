package localstack_test

import (
	"cmp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/testenv"
)

func TestFramesMeetManyInstancesInProcess(t *testing.T) {
	framesMeetManyInstances(t, localstack.InProcess, 300*time.Millisecond)
}

func TestFramesMeetManyInstancesUnderRuntimeEmulator(t *testing.T) {
	framesMeetManyInstances(t, localstack.RIE, time.Second)
}

// framesMeetManyInstances runs one satellite's conversation through a
// stack whose instances are reclaimed quickly: its frames go to different
// instances (each with its own caches, so most frames meet an instance that
// has not seen the connection) and some meet a cold start in the middle of
// the connection. Every frame must still do what it does on one warm
// instance.
func framesMeetManyInstances(t *testing.T, mode localstack.Mode, idle time.Duration) {
	// Four instances: more than the frames this test has in flight, so a
	// frame never has to take the instance of the one before it.
	var mu sync.Mutex
	var calls []gateway.Invocation
	s, _ := startStackWithLogs(t, mode, func(o *localstack.Options) {
		o.Instances, o.InstanceIdle = 4, idle
		o.OnInvoke = func(inv gateway.Invocation) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, inv)
		}
	})
	tok := createSatellite(t, s, "sat-instances", checkWithSecret)
	c := dial(t, satelliteURL(t, s))
	c.send(map[string]any{"type": "authenticate", "clientId": "sat-instances", "token": tok})
	c.expect("authenticated")

	const rounds = 6
	for i := range rounds {
		c.send(map[string]any{"type": "heartbeat", "version": "instances", "uptimeSeconds": i})
		c.send(map[string]any{"type": "result", "configId": "cfg-web", "systemId": "sys-web", "status": "healthy",
			"executedAt": time.Now().UTC().Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)})
		c.send(map[string]any{"type": "request_run_secrets", "requestId": "r", "configId": "cfg-web", "collectorId": "col-plain", "runId": "x"})
		c.expect("run_secrets")
		// The round's heartbeat and result have no answer: wait for their
		// invocations, so that frames in flight never outnumber the
		// instances and each frame can be given a new one.
		testenv.Eventually(t, "the round's frames handled", func() bool {
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for _, inv := range calls {
				if inv.Route == "$default" {
					n++
				}
			}
			return n == 1+3*(i+1)
		})
		if i%2 == 1 {
			// Idle long enough for every instance to be reclaimed.
			deadline := time.Now().Add(30 * time.Second)
			for s.Instances.Running()["MessageFunction"] > 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}

	results, err := s.Registry.LatestResults(ctx, "cfg-web", "sys-web", nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != rounds {
		t.Errorf("%d results stored, want %d", len(results), rounds)
	}
	sat, _, err := s.Registry.Satellite(ctx, "sat-instances")
	if err != nil {
		t.Fatal(err)
	}
	if sat.Version != "instances" {
		t.Errorf("stored version %q: the heartbeats were not all applied", sat.Version)
	}

	mu.Lock()
	defer mu.Unlock()
	var frames []gateway.Invocation
	for _, inv := range calls {
		if inv.Route == "$default" && inv.Err == nil && inv.Instance != "" {
			frames = append(frames, inv)
		}
		if inv.Err != nil {
			t.Errorf("%s failed on %s: %v", inv.Route, inv.Instance, inv.Err)
		}
	}
	slices.SortFunc(frames, func(a, b gateway.Invocation) int { return cmp.Compare(a.Order, b.Order) })
	instances, coldAfterFirst := map[string]bool{}, 0
	for i, f := range frames {
		instances[f.Instance] = true
		if i > 0 && f.Cold {
			coldAfterFirst++
		}
		if i > 0 && f.Instance == frames[i-1].Instance {
			t.Errorf("frames %d and %d both went to %s", i-1, i, f.Instance)
		}
	}
	if len(frames) != 1+3*rounds {
		t.Errorf("%d frames invoked the message function, want %d", len(frames), 1+3*rounds)
	}
	if len(instances) < 2 || coldAfterFirst == 0 {
		t.Errorf("frames met %d instances with %d cold starts after the first; want several of each", len(instances), coldAfterFirst)
	}
	t.Logf("%d frames on %d instances, %d cold starts after the first", len(frames), len(instances), coldAfterFirst)
}
