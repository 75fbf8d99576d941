package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func (s *Satellite) send(ctx context.Context, frame any) error {
	b, err := json.Marshal(frame)
	if err != nil {
		return err
	}
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReplyTimeout)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, b)
}

// errNoReply is a request's error when its reply did not come in time.
var errNoReply = errors.New("no reply")

// request sends a frame and waits for the reply that key identifies.
func (s *Satellite) request(ctx context.Context, key string, frame any) (map[string]any, error) {
	ch := make(chan map[string]any, 1)
	s.mu.Lock()
	if s.waiters == nil {
		s.mu.Unlock()
		return nil, errors.New("not connected")
	}
	s.waiters[key] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, key)
		s.mu.Unlock()
	}()
	if err := s.send(ctx, frame); err != nil {
		return nil, err
	}
	select {
	case f := <-ch:
		return f, nil
	case <-time.After(s.cfg.ReplyTimeout):
		return nil, fmt.Errorf("%w to %s", errNoReply, key)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// deliver hands a reply to whoever waits for it.
func (s *Satellite) deliver(f map[string]any) bool {
	var key string
	switch f["type"] {
	case protocol.TypeScriptPackageManifest:
		key = fmt.Sprintf("manifest:%v", f["lockfileHash"])
	case protocol.TypeScriptPackageBlob:
		key = fmt.Sprintf("blob:%v", f["integrity"])
	case protocol.TypeRunSecrets:
		key = fmt.Sprintf("secrets:%v", f["requestId"])
	case protocol.TypeConfigSecrets:
		key = fmt.Sprintf("config-secrets:%v", f["requestId"])
	case protocol.TypeCapabilitySecretResponse:
		key = fmt.Sprintf("capsecret:%v", f["requestId"])
	case protocol.TypeTelemetryAck:
		// Numbers decode as float64: print them whole (1000000, not
		// 1e+06) to find the waiter.
		id := fmt.Sprint(f["batchId"])
		if n, ok := f["batchId"].(float64); ok {
			id = strconv.FormatFloat(n, 'f', -1, 64)
		}
		key = "telemetry:" + id
	default:
		return false
	}
	s.mu.Lock()
	ch, ok := s.waiters[key]
	s.mu.Unlock()
	if ok {
		ch <- f
	}
	return true
}

func (s *Satellite) heartbeat(ctx context.Context, started time.Time) {
	err := s.send(ctx, map[string]any{"type": "heartbeat", "version": s.cfg.Version, "uptimeSeconds": int(time.Since(started).Seconds()), "capabilities": s.cfg.Capabilities})
	if err != nil && ctx.Err() == nil {
		s.logf("heartbeat not sent: %v", err)
	}
}

func decodeAssignments(v any) []satellite.Assignment {
	b, _ := json.Marshal(v)
	var raw []json.RawMessage
	_ = json.Unmarshal(b, &raw)
	var out []satellite.Assignment
	for _, r := range raw {
		var a satellite.Assignment
		if json.Unmarshal(r, &a) == nil {
			a.Raw = r
			out = append(out, a)
		}
	}
	return out
}

func describeHash(v any) string {
	switch h := v.(type) {
	case string:
		return h
	case nil:
		return "none"
	}
	return fmt.Sprint(v)
}
