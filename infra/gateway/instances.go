package gateway

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Instance is one execution environment of a function: its own memory
// (caches, clients, maps) built by the function's own constructor, serving
// one event at a time, as a Lambda instance does.
type Instance interface {
	// Invoke runs one event. Errors are *FunctionError.
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
	// Close releases the instance (stops its process).
	Close()
}

// StartInstance builds a new instance of a function (its init phase); id
// names it in logs ("MessageFunction#3").
type StartInstance func(ctx context.Context, id string) (Instance, error)

// InstanceConfig says how many instances a function may have and for how
// long an idle one is kept.
type InstanceConfig struct {
	// Max is the most instances one function runs at once: its concurrency.
	// An event that finds all of them busy waits for one (Lambda would
	// throttle it; see docs/LOCAL.md). 1 when below 1.
	Max int
	// IdleTimeout reclaims an instance unused for this long, so the next
	// event of a connection may meet a cold start. Never when zero.
	IdleTimeout time.Duration
	// Log receives instance starts and reclaims; discarded when nil.
	Log *slog.Logger
}

// Instances invokes functions on instances it starts on demand, up to a
// concurrency per function, and reclaims when idle. Dispatch avoids the
// instance that served a connection's previous event whenever another one
// is idle or may be started, so consecutive frames of one socket land on
// different instances: the adversarial case of Lambda, which promises no
// affinity at all.
type Instances struct {
	cfg   InstanceConfig
	pools map[string]*instancePool
	stop  chan struct{}
	done  sync.WaitGroup
	once  sync.Once
}

// NewInstances returns an invoker over functions keyed by logical id. Stop
// closes every instance.
func NewInstances(cfg InstanceConfig, functions map[string]StartInstance) *Instances {
	if cfg.Max < 1 {
		cfg.Max = 1
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	in := &Instances{cfg: cfg, pools: map[string]*instancePool{}, stop: make(chan struct{})}
	for fn, start := range functions {
		in.pools[fn] = &instancePool{function: fn, start: start, cfg: cfg, last: map[string]lastUse{}}
	}
	if cfg.IdleTimeout > 0 {
		in.done.Add(1)
		go in.reclaim()
	}
	return in
}

// Invoke implements Invoker.
func (in *Instances) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	p, ok := in.pools[function]
	if !ok {
		return nil, &FunctionError{Function: function, Type: "ResourceNotFoundException", Message: "no such function"}
	}
	return p.invoke(ctx, payload)
}

// Stop closes every instance; later invocations fail.
func (in *Instances) Stop() {
	in.once.Do(func() {
		close(in.stop)
		in.done.Wait()
		for _, p := range in.pools {
			p.close()
		}
	})
}

// Running reports how many instances each function has now.
func (in *Instances) Running() map[string]int {
	out := map[string]int{}
	for fn, p := range in.pools {
		p.mu.Lock()
		out[fn] = p.total
		p.mu.Unlock()
	}
	return out
}

// Waiting reports how many events wait for an instance of each function.
func (in *Instances) Waiting() map[string]int {
	out := map[string]int{}
	for fn, p := range in.pools {
		p.mu.Lock()
		out[fn] = len(p.queue)
		p.mu.Unlock()
	}
	return out
}

func (in *Instances) reclaim() {
	defer in.done.Done()
	every := min(in.cfg.IdleTimeout/4, time.Second)
	t := time.NewTicker(max(every, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-in.stop:
			return
		case now := <-t.C:
			for _, p := range in.pools {
				p.reclaimIdle(now)
			}
		}
	}
}

// instancePool is one function's instances.
type instancePool struct {
	function string
	start    StartInstance
	cfg      InstanceConfig

	mu sync.Mutex
	// idle holds the instances not serving an event, least recently used
	// first.
	idle []*instance
	// total counts idle, busy and starting instances.
	total  int
	seq    int
	order  int64
	closed bool
	// last is the instance each connection's latest event went to.
	last map[string]lastUse
	// queue holds the events waiting for an instance, oldest first.
	queue []chan struct{}
}

type instance struct {
	Instance
	id       string
	lastUsed time.Time
}

type lastUse struct {
	id string
	at time.Time
}

func (p *instancePool) invoke(ctx context.Context, payload []byte) ([]byte, error) {
	d := dispatchOf(ctx)
	key := ""
	if d != nil {
		key = d.Connection
	}
	inst, cold, err := p.acquire(ctx, d, key)
	if err != nil {
		return nil, err
	}
	if d != nil {
		d.Instance, d.Cold = inst.id, cold
	}
	out, err := inst.Invoke(ctx, payload)
	// Lambda resets an environment whose invocation timed out or crashed;
	// here such an instance may still be running the handler, so it is
	// never given another event.
	p.release(inst, ctx.Err() != nil || isRuntimeFailure(err))
	return out, err
}

// acquire picks an idle instance other than the one that served key last,
// or starts one, or waits for one to be released.
func (p *instancePool) acquire(ctx context.Context, d *Dispatch, key string) (*instance, bool, error) {
	// Events wait in arrival order: only the oldest waiting one may take
	// an instance, so a busy function cannot overtake an event for ever.
	w := make(chan struct{}, 1)
	p.mu.Lock()
	p.queue = append(p.queue, w)
	for {
		if p.closed {
			p.leave(w)
			p.mu.Unlock()
			return nil, false, &FunctionError{Function: p.function, Type: "ServiceException", Message: "stack stopped"}
		}
		if p.queue[0] == w {
			if in, id, ok := p.take(d, key); ok {
				p.leave(w)
				p.mu.Unlock()
				if in != nil {
					return in, false, nil
				}
				return p.startInstance(ctx, id)
			}
		}
		p.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			p.mu.Lock()
			p.leave(w)
			p.mu.Unlock()
			return nil, false, &FunctionError{Function: p.function, Type: "Sandbox.Timedout", Message: "no instance became free before the timeout"}
		}
		p.mu.Lock()
	}
}

// take gives the event an idle instance other than the one that served
// key last, or reserves a new one (returning its id), or, at the
// concurrency with only key's last instance idle, that one; false when
// every instance is busy. p.mu is held.
func (p *instancePool) take(d *Dispatch, key string) (*instance, string, bool) {
	avoid := ""
	if key != "" {
		avoid = p.last[key].id
	}
	pick := -1
	for i, in := range p.idle {
		if in.id != avoid {
			pick = i
			break
		}
	}
	if pick < 0 && p.total < p.cfg.Max {
		p.total++
		p.seq++
		id := p.function + "#" + strconv.Itoa(p.seq)
		p.dispatched(d, key, id)
		return nil, id, true
	}
	if pick < 0 && len(p.idle) > 0 {
		pick = 0 // only the connection's last instance is free: no other choice
	}
	if pick < 0 {
		return nil, "", false
	}
	in := p.idle[pick]
	p.idle = append(p.idle[:pick], p.idle[pick+1:]...)
	p.dispatched(d, key, in.id)
	return in, "", true
}

// startInstance runs the init of a reserved instance.
func (p *instancePool) startInstance(ctx context.Context, id string) (*instance, bool, error) {
	inst, err := p.start(ctx, id)
	if err != nil {
		p.mu.Lock()
		p.total--
		p.wake()
		p.mu.Unlock()
		return nil, false, &FunctionError{Function: p.function, Type: "Runtime.InitError", Message: err.Error()}
	}
	p.cfg.Log.Debug("instance started", "function", p.function, "instance", id)
	return &instance{Instance: inst, id: id}, true, nil
}

// leave takes w out of the queue and lets the next event try; p.mu is
// held.
func (p *instancePool) leave(w chan struct{}) {
	if i := slices.Index(p.queue, w); i >= 0 {
		p.queue = slices.Delete(p.queue, i, i+1)
	}
	p.wake()
}

// wake tells the oldest waiting event to try again; p.mu is held.
func (p *instancePool) wake() {
	if len(p.queue) > 0 {
		select {
		case p.queue[0] <- struct{}{}:
		default:
		}
	}
}

// dispatched records that key's latest event went to instance id; p.mu is
// held.
func (p *instancePool) dispatched(d *Dispatch, key, id string) {
	p.order++
	if d != nil {
		d.Order = p.order
	}
	if key != "" {
		p.last[key] = lastUse{id: id, at: time.Now()}
	}
}

func (p *instancePool) release(in *instance, discard bool) {
	now := time.Now()
	p.mu.Lock()
	if discard || p.closed {
		p.total--
		p.wake()
		p.mu.Unlock()
		in.Close()
		return
	}
	in.lastUsed = now
	p.idle = append(p.idle, in)
	p.wake()
	p.mu.Unlock()
}

func (p *instancePool) reclaimIdle(now time.Time) {
	var gone []*instance
	p.mu.Lock()
	kept := p.idle[:0]
	for _, in := range p.idle {
		if now.Sub(in.lastUsed) >= p.cfg.IdleTimeout {
			gone = append(gone, in)
			continue
		}
		kept = append(kept, in)
	}
	p.idle = kept
	p.total -= len(gone)
	// A connection's latest instance matters while that instance lives;
	// entries are also dropped after API Gateway's 10 minute idle timeout,
	// which bounds the map under constant load.
	goneIDs := map[string]bool{}
	for _, in := range gone {
		goneIDs[in.id] = true
	}
	for key, u := range p.last {
		if goneIDs[u.id] || now.Sub(u.at) >= 10*time.Minute {
			delete(p.last, key)
		}
	}
	if len(gone) > 0 {
		p.wake()
	}
	p.mu.Unlock()
	for _, in := range gone {
		p.cfg.Log.Debug("instance reclaimed", "function", p.function, "instance", in.id)
		in.Close()
	}
}

func (p *instancePool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.total -= len(idle)
	for _, w := range p.queue {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	p.mu.Unlock()
	for _, in := range idle {
		in.Close()
	}
}

// isRuntimeFailure is an invocation after which Lambda would not reuse the
// environment: a timeout or a crash, not an error the handler returned.
func isRuntimeFailure(err error) bool {
	fe, ok := err.(*FunctionError)
	if !ok {
		return err != nil
	}
	switch fe.Type {
	case "Sandbox.Timedout", "Runtime.Panic", "Runtime.ExitError", "Runtime.Unknown", "Invoke":
		return true
	}
	return false
}

// Dispatch carries what the invoker should know about an event and what it
// decided: the connection whose frame it is (so that consecutive frames go
// to different instances) and the instance that served it.
type Dispatch struct {
	Connection string
	Instance   string
	Cold       bool
	// Order counts the function's events in the order they were given an
	// instance (frames of one socket run concurrently, so their arrival
	// order is not it).
	Order int64
}

type dispatchKey struct{}

// WithDispatch returns a context carrying d; the Instances invoker fills in
// Instance and Cold.
func WithDispatch(ctx context.Context, d *Dispatch) context.Context {
	return context.WithValue(ctx, dispatchKey{}, d)
}

func dispatchOf(ctx context.Context) *Dispatch {
	d, _ := ctx.Value(dispatchKey{}).(*Dispatch)
	return d
}
