package simulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// scheduler runs each assignment on its interval: a result, and the run
// secrets of any collector that declares secretEnv.
type scheduler struct {
	s      *Satellite
	ctx    context.Context
	mu     sync.Mutex
	cancel context.CancelFunc
}

func newScheduler(s *Satellite, ctx context.Context) *scheduler { return &scheduler{s: s, ctx: ctx} }

func (w *scheduler) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		w.cancel()
	}
}

// apply replaces the running assignments.
func (w *scheduler) apply(assignments []satellite.Assignment) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		w.cancel()
	}
	ctx, cancel := context.WithCancel(w.ctx)
	w.cancel = cancel
	w.s.mu.Lock()
	w.s.state.Assignments = assignments
	w.s.mu.Unlock()
	sort.Slice(assignments, func(i, j int) bool { return assignments[i].ConfigID < assignments[j].ConfigID })
	for _, a := range assignments {
		go w.run(ctx, a)
	}
}

func (w *scheduler) run(ctx context.Context, a satellite.Assignment) {
	every := time.Duration(a.IntervalSeconds * float64(time.Second))
	if w.s.cfg.ResultInterval > 0 {
		every = w.s.cfg.ResultInterval
	}
	if every <= 0 {
		every = time.Minute
	}
	for {
		w.once(ctx, a)
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// once is one simulated run of an assignment.
func (w *scheduler) once(ctx context.Context, a satellite.Assignment) {
	runID := randomID()
	for _, c := range a.Collectors {
		if _, err := c.SecretEnv(); err != nil {
			continue
		}
		reqID := "req-" + randomID()
		reply, err := w.s.request(ctx, "secrets:"+reqID, map[string]any{
			"type": protocol.TypeRunSecretsRequest, "requestId": reqID, "configId": a.ConfigID, "collectorId": c.ID, "runId": runID,
		})
		if err != nil {
			return
		}
		w.s.mu.Lock()
		if env, ok := reply["env"].(map[string]any); ok {
			w.s.state.SecretsReceived[c.ID] = len(env)
			w.s.mu.Unlock()
			w.s.logf("run secrets for %s/%s: %d variable(s)", a.ConfigID, c.ID, len(env))
		} else {
			w.s.state.SecretsRefused[c.ID] = fmt.Sprint(reply["error"])
			w.s.mu.Unlock()
			w.s.logf("run secrets for %s/%s refused: %v", a.ConfigID, c.ID, reply["error"])
		}
	}
	w.configSecrets(ctx, a, runID)
	for _, env := range environments(a) {
		latency := 20 + int(time.Now().UnixNano()%80)
		frame := map[string]any{
			"type": protocol.TypeResult, "configId": a.ConfigID, "systemId": a.SystemID, "status": "healthy",
			"latencyMs": latency, "executedAt": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
			"result": map[string]any{"status": "healthy", "latencyMs": latency, "message": "simulated", "metadata": map[string]any{"connected": true}},
		}
		label := ""
		if env != nil {
			frame["environmentId"], label = *env, *env
		}
		if err := w.s.send(ctx, frame); err != nil {
			return
		}
		w.s.mu.Lock()
		w.s.state.ResultsSent++
		w.s.state.ResultsByEnvironment[label]++
		n := w.s.state.ResultsSent
		w.s.mu.Unlock()
		if n <= 3 || n%100 == 0 {
			w.s.logf("result %s/%s%s healthy in %d ms (%d sent)", a.ConfigID, a.SystemID, inEnvironment(label), latency, n)
		}
	}
}

func inEnvironment(env string) string {
	if env == "" {
		return ""
	}
	return " in " + env
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
