package satellite

import "time"

// CloseMessageTooBig is the WebSocket close code for "a message that is too
// big to process" (RFC 6455, section 7.4.1). API Gateway closes a
// connection with it when the client sends a message over its 128 KB limit.
const CloseMessageTooBig = 1009

// ReasonMessageTooBig is the reason a disconnected edge gives for a close
// with CloseMessageTooBig.
const ReasonMessageTooBig = "message_too_big"

// OversizedMessagesWarning is what the admin API and satctl say about a
// satellite marked for oversized messages (OversizedMessages.MarkedAt).
const OversizedMessagesWarning = "messages over API Gateway's 128 KB limit: the agent's telemetry batch size must be lowered"

// CloseStatus is how a connection closed, as API Gateway's $disconnect
// event reports it (requestContext.disconnectStatusCode and
// disconnectReason). The zero value is a close nobody reported: a
// connection found gone by a post, or past its expiry.
type CloseStatus struct {
	Code   int
	Reason string
}

// MessageTooBig reports whether the connection was closed for a message
// over API Gateway's limit.
func (c CloseStatus) MessageTooBig() bool { return c.Code == CloseMessageTooBig }

// Oversized messages: two closes with CloseMessageTooBig of one satellite
// within OversizedWindow of each other are "repeated", and mark the
// satellite until OversizedMarkedFor after the later one.
const (
	OversizedWindow    = time.Hour
	OversizedMarkedFor = 24 * time.Hour
)

// FlapWindow is how soon after a close with CloseMessageTooBig a new
// connection's connected edge counts as the reconnect that close caused
// (flapping). The stock agent reconnects about a second after a close once
// it had authenticated (its back-off restarts at 1 s and never passes
// 30 s).
const FlapWindow = 30 * time.Second

// OversizedMessages is what a satellite's item records of its connections
// that API Gateway closed with CloseMessageTooBig: the record is written by
// the close itself, in the write $disconnect makes anyway.
type OversizedMessages struct {
	// Closes counts all of them.
	Closes int64
	// LastAt is the latest, PreviousAt the one before (zero: none).
	LastAt, PreviousAt time.Time
}

// Closed returns the record after one more close at t.
func (o OversizedMessages) Closed(at time.Time) OversizedMessages {
	return OversizedMessages{Closes: o.Closes + 1, LastAt: at, PreviousAt: o.LastAt}
}

// Repeated reports whether the last two closes came within OversizedWindow
// of each other.
func (o OversizedMessages) Repeated() bool {
	if o.LastAt.IsZero() || o.PreviousAt.IsZero() {
		return false
	}
	d := o.LastAt.Sub(o.PreviousAt)
	return d <= OversizedWindow && d >= -OversizedWindow
}

// MarkedAt reports whether the satellite is marked at now: its closes are
// repeated and the last is less than OversizedMarkedFor old.
func (o OversizedMessages) MarkedAt(now time.Time) bool {
	return o.Repeated() && now.Sub(o.LastAt) < OversizedMarkedFor
}

// FirstRepeatedInHour reports whether the close that turned before into
// after is the first repeated close of its clock hour: the one that is
// logged, so that an agent reconnecting every second is logged once an
// hour, not once a reconnect. It needs nothing but the two records: of the
// repeated closes of one hour only the first follows a close of an earlier
// hour or one that was not repeated.
func FirstRepeatedInHour(before, after OversizedMessages) bool {
	if !after.Repeated() {
		return false
	}
	return !before.Repeated() || !before.LastAt.Truncate(time.Hour).Equal(after.LastAt.Truncate(time.Hour))
}

// EdgeMarks tell consumers what kind of edge an edge is, beyond its type,
// so that notifications can leave the routine ones out. Every mark is
// stored with the edge in its satellite's outbox, so a republished edge
// carries the same marks.
type EdgeMarks struct {
	// CloseCode is, on a disconnected edge, the WebSocket close code
	// $disconnect reported (0: none was reported).
	CloseCode int
	// Recovered marks a connected edge that ends a heartbeat loss: the
	// satellite's heartbeats had stopped (heartbeat_lost) and it is back.
	Recovered bool
	// Flapping marks a connected edge that came within FlapWindow of the
	// satellite's last close with CloseMessageTooBig, ReconnectAfter after
	// it: a reconnect caused by a message over the limit.
	Flapping       bool
	ReconnectAfter time.Duration
}

// ReconnectMarks are the marks of the connected edge s takes at now when a
// new connection authenticates: recovered when its heartbeats were lost
// (and not restored since), flapping when its last close with
// CloseMessageTooBig is at most FlapWindow old.
func (s Satellite) ReconnectMarks(now time.Time) EdgeMarks {
	m := EdgeMarks{Recovered: !s.HeartbeatLostAt.IsZero()}
	if last := s.Oversized.LastAt; !last.IsZero() && now.Sub(last) <= FlapWindow {
		// A close stamped a moment after now came from a clock running
		// ahead: the reconnect followed it at once.
		m.Flapping, m.ReconnectAfter = true, max(now.Sub(last), 0)
	}
	return m
}
