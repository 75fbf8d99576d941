package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// scheduledEvent is the event EventBridge delivers for a schedule.
type scheduledEvent struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

func (g *Gateway) runSchedule(s Schedule) {
	defer g.wg.Done()
	every := s.Every
	if g.cfg.ScheduleEvery > 0 {
		every = g.cfg.ScheduleEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tick.C:
			// Shutdown ends a run still going (the sweep waits between its
			// passes).
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				select {
				case <-g.stop:
					cancel()
				case <-done:
				}
			}()
			g.FireSchedule(ctx, s)
			close(done)
			cancel()
		}
	}
}

// FireSchedule invokes a scheduled function once with a Scheduled Event,
// as EventBridge would, with the function's Timeout as its deadline (the
// integration timeout when the schedule has none).
func (g *Gateway) FireSchedule(ctx context.Context, s Schedule) error {
	now := g.cfg.Now().UTC()
	payload, _ := json.Marshal(scheduledEvent{
		Version: "0", ID: newID(), DetailType: "Scheduled Event", Source: "aws.events",
		Account: "123456789012", Time: now.Format(time.RFC3339), Region: g.cfg.Region,
		Resources: []string{fmt.Sprintf("arn:aws:events:%s:123456789012:rule/%s-%s", g.cfg.Region, s.Function, s.Name)},
		Detail:    json.RawMessage("{}"),
	})
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = g.cfg.IntegrationTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	started := time.Now()
	d := &Dispatch{}
	_, err := g.cfg.Invoker.Invoke(WithDispatch(ctx, d), s.Function, payload)
	if g.cfg.OnInvoke != nil {
		g.cfg.OnInvoke(Invocation{Route: "schedule:" + s.Name, Started: started, Duration: time.Since(started), Err: err, Instance: d.Instance, Cold: d.Cold, Order: d.Order})
	}
	if err != nil {
		g.log.Warn("scheduled function failed", "function", s.Function, "schedule", s.Expression, "error", err.Error())
	} else {
		g.log.Info("scheduled function ran", "function", s.Function, "schedule", s.Expression)
	}
	return err
}
