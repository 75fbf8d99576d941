package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// What today's satellites add to the protocol (see docs/PROTOCOL.md):
// capabilities, the sandbox policy, config secrets, environments, telemetry
// batches in a credit window, and capability channels.

// DefaultCapabilities are what a simulated satellite advertises unless
// configured otherwise.
var DefaultCapabilities = []string{"scrape", "telemetry"}

// applySandboxPolicy records the sandbox policy scripts would run under;
// without one the satellite stays fail-closed.
func (s *Satellite) applySandboxPolicy(policy any, from string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := policy.(map[string]any); ok {
		b, _ := json.Marshal(p)
		s.state.SandboxPolicy = b
		s.state.SandboxPolicyUpdates++
		s.logf("sandbox policy from %s: scripts run under it", from)
		return
	}
	if s.state.SandboxPolicy == nil {
		s.logf("no sandbox policy in %s: scripts run fail-closed (egress denied)", from)
	}
}

// configSecrets asks for the secret fields of an assignment whose config or
// collectors reference secrets, as a real satellite does before a run.
func (w *scheduler) configSecrets(ctx context.Context, a satellite.Assignment, runID string) {
	refs := len(satellite.SecretRefs(a.Config))
	for _, c := range a.Collectors {
		refs += len(satellite.SecretRefs(map[string]any(c.Config)))
	}
	if refs == 0 {
		return
	}
	reqID := "cfg-" + randomID()
	reply, err := w.s.request(ctx, "config-secrets:"+reqID, map[string]any{
		"type": protocol.TypeConfigSecretsRequest, "requestId": reqID, "configId": a.ConfigID, "runId": runID,
	})
	if err != nil {
		return
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if msg, ok := reply["error"].(string); ok {
		w.s.state.ConfigSecretsRefused[a.ConfigID] = msg
		w.s.logf("config secrets for %s refused: %s", a.ConfigID, msg)
		return
	}
	n := 0
	if strategy, ok := reply["strategy"].(map[string]any); ok {
		n += len(strategy)
	}
	if collectors, ok := reply["collectors"].(map[string]any); ok {
		for _, fields := range collectors {
			if m, ok := fields.(map[string]any); ok {
				n += len(m)
			}
		}
	}
	w.s.state.ConfigSecretsReceived[a.ConfigID] = n
	w.s.logf("config secrets for %s: %d field(s)", a.ConfigID, n)
}

// environments is one run per listed environment, or one environment-less
// run (nil).
func environments(a satellite.Assignment) []*string {
	if len(a.Environments) == 0 {
		return []*string{nil}
	}
	out := make([]*string, 0, len(a.Environments))
	for _, e := range a.Environments {
		id := e.ID
		out = append(out, &id)
	}
	return out
}

// capabilities runs what the operator configured per capability kind: for
// scrape, each target's secret is asked for and its status reported.
type capabilities struct {
	s   *Satellite
	ctx context.Context

	mu     sync.Mutex
	cancel map[string]context.CancelFunc
}

func newCapabilities(s *Satellite, ctx context.Context) *capabilities {
	return &capabilities{s: s, ctx: ctx, cancel: map[string]context.CancelFunc{}}
}

// apply (re)starts a kind's work with its new config.
func (c *capabilities) apply(kind string, payload any) {
	c.s.mu.Lock()
	c.s.state.CapabilityConfigs[kind]++
	c.s.mu.Unlock()
	c.s.logf("capability_config %s", kind)
	c.mu.Lock()
	defer c.mu.Unlock()
	if stop, ok := c.cancel[kind]; ok {
		stop()
	}
	ctx, stop := context.WithCancel(c.ctx)
	c.cancel[kind] = stop
	go c.run(ctx, kind, payload)
}

// run polls each target of a kind's config: its secret, then a status.
func (c *capabilities) run(ctx context.Context, kind string, payload any) {
	var targets []string
	if p, ok := payload.(map[string]any); ok {
		list, _ := p["targets"].([]any)
		for _, t := range list {
			if m, ok := t.(map[string]any); ok {
				if id, ok := m["id"].(string); ok {
					targets = append(targets, id)
				}
			}
		}
	}
	sort.Strings(targets)
	every := c.s.cfg.HeartbeatInterval
	for {
		status := map[string]any{}
		for _, target := range targets {
			reqID := "cap-" + randomID()
			reply, err := c.s.request(ctx, "capsecret:"+reqID, map[string]any{
				"type": protocol.TypeCapabilitySecretRequest, "requestId": reqID, "kind": kind, "payload": map[string]any{"targetId": target},
			})
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				// No answer this round: the target's status says so, and the
				// next round asks again.
				status[target] = map[string]any{"lastScrapeAt": nil, "error": err.Error()}
				continue
			}
			entry := map[string]any{"lastScrapeAt": time.Now().UTC().Format(time.RFC3339), "error": nil}
			c.s.mu.Lock()
			if p, ok := reply["payload"].(map[string]any); ok {
				c.s.state.CapabilitySecrets[kind+"/"+target] = len(p)
			} else {
				entry["error"] = fmt.Sprint(reply["error"])
				c.s.state.CapabilitySecretsRefused[kind+"/"+target] = fmt.Sprint(reply["error"])
			}
			c.s.mu.Unlock()
			status[target] = entry
		}
		if err := c.s.send(ctx, map[string]any{"type": protocol.TypeCapabilityStatus, "kind": kind, "payload": map[string]any{"targets": status}}); err == nil {
			c.s.mu.Lock()
			c.s.state.CapabilityStatusesSent++
			c.s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// telemetry sends log batches, at most TelemetryWindow unacknowledged at a
// time (the agent's credit window): a retryable ack keeps the batch and
// sends it again with the same batchId; a terminal one settles it.
func (s *Satellite) telemetry(ctx context.Context) {
	if s.cfg.TelemetryInterval <= 0 {
		return
	}
	credits := make(chan struct{}, s.cfg.TelemetryWindow)
	for {
		select {
		case <-ctx.Done():
			return
		case credits <- struct{}{}:
		}
		s.mu.Lock()
		s.nextBatch++
		id := s.nextBatch
		s.mu.Unlock()
		go func() {
			defer func() { <-credits }()
			s.sendBatch(ctx, id)
		}()
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.TelemetryInterval):
		}
	}
}

func (s *Satellite) sendBatch(ctx context.Context, id int64) {
	key := "telemetry:" + strconv.FormatInt(id, 10)
	frame := map[string]any{
		"type": protocol.TypeTelemetryBatch, "batchId": id, "kind": "logstream",
		"payload": []any{
			map[string]any{"stream": "agent", "ts": time.Now().UTC().Format(time.RFC3339Nano), "line": fmt.Sprintf("simulated log line %d", id)},
		},
		"droppedByGroup": map[string]any{"agent": 0},
	}
	for attempt := 0; ; attempt++ {
		ack, err := s.request(ctx, key, frame)
		switch {
		case ctx.Err() != nil:
			return // the connection ended: the batch is lost with it
		case errors.Is(err, errNoReply):
			// No ack in time: send it again with the same batchId.
			s.mu.Lock()
			s.state.TelemetryRetries++
			s.mu.Unlock()
			continue
		case err != nil:
			return
		}
		s.mu.Lock()
		s.state.TelemetryAcks++
		retryable, _ := ack["retryable"].(bool)
		accepted, _ := ack["accepted"].(float64)
		if !retryable {
			s.state.TelemetryAccepted += int(accepted)
			if accepted == 0 {
				s.state.TelemetryDropped++
			}
			s.mu.Unlock()
			return
		}
		s.state.TelemetryRetries++
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(Backoff(attempt, s.cfg.BackoffMin, s.cfg.BackoffMax)):
		}
	}
}
