package endpoint

import (
	"strings"
	"sync"
	"time"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// bindings remembers, in one warm function instance, which connections have
// authenticated as which satellite, so that most frames need no read of the
// connection record. It is safe because a binding never changes for a live
// connection: connection ids are never reused, a revoked satellite's
// connections are closed (and a closed connection sends no more frames), and
// every write a frame causes is still conditional on the stored state (a
// heartbeat after its connection closed, or a result for a deleted
// satellite, is refused by DynamoDB, not by this cache). Entries expire with
// their connection record and after ttl at most, so a renamed satellite's
// result label is stale for at most ttl.
type bindings struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[string]binding
}

type binding struct {
	conn  satellite.Connection
	until time.Time
}

func newBindings(ttl time.Duration, max int) *bindings {
	return &bindings{ttl: ttl, max: max, entries: map[string]binding{}}
}

// get returns a cached authenticated connection.
func (b *bindings) get(id string, now time.Time) (satellite.Connection, bool) {
	if b == nil || b.ttl <= 0 {
		return satellite.Connection{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[id]
	if !ok {
		return satellite.Connection{}, false
	}
	if !now.Before(e.until) || e.conn.Expired(now) {
		delete(b.entries, id)
		return satellite.Connection{}, false
	}
	return e.conn, true
}

// put caches an authenticated connection.
func (b *bindings) put(c satellite.Connection, now time.Time) {
	if b == nil || b.ttl <= 0 || !c.Authenticated() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.entries) >= b.max {
		// Bounded memory: start over rather than track recency.
		b.entries = map[string]binding{}
	}
	b.entries[c.ID] = binding{conn: c, until: now.Add(b.ttl)}
}

// forget drops a connection (closed, unbound or refused here).
func (b *bindings) forget(id string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, id)
}

// attempts remembers, in one instance, the connections whose one
// authentication attempt it claimed, so that further authenticate frames it
// handles for them (a pipelining guesser's) are dropped without a request.
// The stored claim decides across instances; this only saves requests.
type attempts struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	claimed map[string]time.Time
}

func newAttempts(ttl time.Duration, max int) *attempts {
	return &attempts{ttl: ttl, max: max, claimed: map[string]time.Time{}}
}

// take records an attempt on id and reports whether it is the first this
// instance has seen within ttl.
func (a *attempts) take(id string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if at, ok := a.claimed[id]; ok && now.Sub(at) < a.ttl {
		return false
	}
	if len(a.claimed) >= a.max {
		a.claimed = map[string]time.Time{}
	}
	a.claimed[id] = now
	return true
}

// forget drops id, so its next attempt goes to the store (a claim given
// back after a backend failure, or a lost reply).
func (a *attempts) forget(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.claimed, id)
}

// reported remembers, in one instance, the capabilities each connection
// last reported, so that a heartbeat repeating them writes nothing more.
// Memory only saves bytes: a heartbeat on an instance that does not know the
// connection writes them again, in the same request it makes anyway.
type reported struct {
	max int

	mu   sync.Mutex
	caps map[string]string
}

func newReported(max int) *reported { return &reported{max: max, caps: map[string]string{}} }

func capabilityKey(caps []string) string { return strings.Join(caps, "\n") }

// changed reports whether caps differ from what id last reported here (or
// nothing is known).
func (r *reported) changed(id string, caps []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	known, ok := r.caps[id]
	return !ok || known != capabilityKey(caps)
}

// remember records what id reported.
func (r *reported) remember(id string, caps []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.caps) >= r.max {
		r.caps = map[string]string{}
	}
	r.caps[id] = capabilityKey(caps)
}

func (r *reported) forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.caps, id)
}
