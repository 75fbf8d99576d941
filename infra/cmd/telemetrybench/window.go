package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/shared/protocol"
)

// telemetry is the satellite sending batches in its credit window.
type telemetry struct {
	c          *websocket.Conn
	kind       string
	payload    json.RawMessage
	items      int
	slots      chan struct{} // one per batch sent and not yet acked terminally
	retryAfter time.Duration

	mu       sync.Mutex
	sent     int                 // batches (not attempts)
	inFlight map[int64]time.Time // batchId -> when its latest frame was written
	settled  map[int64]bool      // batches acked as stored
	stored   int
	terminal int // acked terminal without storing
	// unexpected counts acks for a batch with no frame awaiting one.
	unexpected    int
	storedLatency []time.Duration
	retryLatency  []time.Duration
	firstAck      time.Duration
	// acks lists the connection's acks in the order read.
	acks []ack
	done chan struct{} // closed when the last batch settles after sending stopped
	over bool          // sending stopped
}

type ack struct {
	batch     int64
	latency   time.Duration
	sentAt    time.Time
	retryable bool
	accepted  int
}

// sendFor sends a batch whenever the window has room, for d.
func (t *telemetry) sendFor(ctx context.Context, d time.Duration) {
	end := time.NewTimer(d)
	defer end.Stop()
	for id := int64(1); ; id++ {
		select {
		case <-end.C:
			t.mu.Lock()
			t.over = true
			t.done = make(chan struct{})
			if len(t.settled)+t.terminal == t.sent {
				close(t.done)
			}
			t.mu.Unlock()
			return
		case t.slots <- struct{}{}:
		}
		t.mu.Lock()
		t.sent++
		t.mu.Unlock()
		t.send(ctx, id)
	}
}

// send writes one attempt of batch id.
func (t *telemetry) send(ctx context.Context, id int64) {
	frame := batchFrame(id, t.kind, t.payload)
	t.mu.Lock()
	t.inFlight[id] = time.Now()
	t.mu.Unlock()
	if err := t.c.Write(ctx, websocket.MessageText, frame); err != nil {
		fail(fmt.Errorf("write batch %d: %w", id, err))
	}
}

// read takes one frame the telemetry satellite received.
func (t *telemetry) read(frame []byte) {
	now := time.Now()
	var a struct {
		Type      string          `json:"type"`
		BatchID   json.RawMessage `json:"batchId"`
		Accepted  int             `json:"accepted"`
		Retryable bool            `json:"retryable"`
	}
	if json.Unmarshal(frame, &a) != nil || a.Type != protocol.TypeTelemetryAck {
		return
	}
	id, err := strconv.ParseInt(string(a.BatchID), 10, 64)
	t.mu.Lock()
	defer t.mu.Unlock()
	sentAt, ok := t.inFlight[id]
	if err != nil || !ok {
		t.unexpected++
		return
	}
	delete(t.inFlight, id)
	lat := now.Sub(sentAt)
	if len(t.acks) == 0 {
		t.firstAck = lat
	}
	t.acks = append(t.acks, ack{batch: id, latency: lat, sentAt: sentAt, retryable: a.Retryable, accepted: a.Accepted})
	switch {
	case a.Retryable:
		t.retryLatency = append(t.retryLatency, lat)
		// The batch keeps its slot until it is acked terminally.
		time.AfterFunc(t.retryAfter, func() { t.send(context.Background(), id) })
		return
	case a.Accepted == t.items:
		t.stored++
		t.settled[id] = true
		t.storedLatency = append(t.storedLatency, lat)
	default:
		t.terminal++
	}
	<-t.slots
	if t.over && len(t.settled)+t.terminal == t.sent {
		close(t.done)
	}
}

// waitSettled waits up to d for every batch sent to be acked terminally.
func (t *telemetry) waitSettled(d time.Duration) bool {
	t.mu.Lock()
	done := t.done
	t.mu.Unlock()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// print writes the table of acks and the first window; it returns the
// batches never acked as stored.
func (t *telemetry) print(invocations *invocationLog, window int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	lost := t.sent - len(t.settled)
	stored := percentiles(t.storedLatency)
	fmt.Printf("| batches sent | acked as stored | lost/unacked | retryable acks | first ack ms | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| %d | %d | %d | %d | %.0f | %.0f | %.0f | %.0f | %.0f |\n\n", t.sent, t.stored, lost, len(t.retryLatency),
		ms(t.firstAck), stored(0.50), stored(0.90), stored(0.99), stored(1))
	if len(t.retryLatency) > 0 {
		r := percentiles(t.retryLatency)
		fmt.Printf("Retryable acks: p50 %.0f ms, max %.0f ms.\n", r(0.5), r(1))
	}
	if t.terminal > 0 {
		fmt.Printf("Acked terminal without storing: %d.\n", t.terminal)
	}
	if t.unexpected > 0 {
		fmt.Printf("Acks for no batch in flight: %d.\n", t.unexpected)
	}
	if f, overtaken, ok := invocations.slowest(); ok {
		fmt.Printf("Slowest frame of the telemetry socket: %.0f ms from reaching the gateway to the function's return; %d frames that reached it later were given an instance first.\n", ms(f.Duration), overtaken)
	}
	t.printFirstWindow(invocations, window)
	return lost
}

// printFirstWindow shows the connection's first acks, one per batch of the
// first window, beside the gateway's view of their frames: the frames of
// the first window arrive in order right after authenticate, so the n-th
// $default invocation after it is batch n.
func (t *telemetry) printFirstWindow(invocations *invocationLog, window int) {
	if len(t.acks) == 0 {
		return
	}
	rest := percentiles(t.storedLatency[min(window, len(t.storedLatency)):])
	fmt.Printf("\nFirst window (rest of the stored acks: p50 %.0f ms, max %.0f ms):\n\n", rest(0.5), rest(1))
	fmt.Printf("| batch | ack ms | outcome | frame at gateway ms | invocation ms | overtaken by | instance | cold |\n|---|---|---|---|---|---|---|---|\n")
	frames := invocations.batchFrames()
	for _, a := range t.acks {
		if a.batch > int64(window) {
			continue
		}
		outcome := "stored"
		if a.retryable {
			outcome = "retryable"
		} else if a.accepted != t.items {
			outcome = fmt.Sprintf("terminal, %d accepted", a.accepted)
		}
		arrived, took, overtaken, inst, cold := "", "", "", "", ""
		if i := int(a.batch) - 1; i < len(frames) {
			f := frames[i]
			arrived = fmt.Sprintf("%.1f", ms(f.Started.Sub(a.sentAt)))
			took = fmt.Sprintf("%.0f", ms(f.Duration))
			overtaken = strconv.Itoa(invocations.overtaken(f))
			inst, cold = f.Instance, strconv.FormatBool(f.Cold)
		}
		fmt.Printf("| %d | %.0f | %s | %s | %s | %s | %s | %s |\n", a.batch, ms(a.latency), outcome, arrived, took, overtaken, inst, cold)
	}
}

// invocationLog keeps the gateway's invocations of one socket, and when
// and in which order every frame of any socket was given an instance.
type invocationLog struct {
	mu    sync.Mutex
	watch bool
	conn  string
	invs  []gateway.Invocation
	all   []gateway.Invocation // every $default invocation
}

func (l *invocationLog) watchNextConnect() {
	l.mu.Lock()
	l.watch = true
	l.mu.Unlock()
}

func (l *invocationLog) add(inv gateway.Invocation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.watch && l.conn == "" && inv.Route == "$connect" {
		l.conn = inv.ConnectionID
	}
	if inv.ConnectionID != "" && inv.ConnectionID == l.conn {
		l.invs = append(l.invs, inv)
	}
	if inv.Route == "$default" {
		l.all = append(l.all, inv)
	}
}

// overtaken counts the frames that arrived after f but were given an
// instance before it.
func (l *invocationLog) overtaken(f gateway.Invocation) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, o := range l.all {
		if o.Started.After(f.Started) && o.Order < f.Order {
			n++
		}
	}
	return n
}

// slowest is the watched socket's longest batch invocation and how many
// frames overtook it.
func (l *invocationLog) slowest() (gateway.Invocation, int, bool) {
	var worst gateway.Invocation
	found := false
	for _, f := range l.batchFrames() {
		if !found || f.Duration > worst.Duration {
			worst, found = f, true
		}
	}
	if !found {
		return worst, 0, false
	}
	return worst, l.overtaken(worst), true
}

// batchFrames are the watched socket's frames after authenticate (its
// first), in the order they reached the gateway.
func (l *invocationLog) batchFrames() []gateway.Invocation {
	l.mu.Lock()
	defer l.mu.Unlock()
	var frames []gateway.Invocation
	for _, f := range l.invs {
		if f.Route == "$default" {
			frames = append(frames, f)
		}
	}
	sort.Slice(frames, func(i, j int) bool { return frames[i].Started.Before(frames[j].Started) })
	return frames[min(1, len(frames)):]
}
