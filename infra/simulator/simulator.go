// Package simulator is a satellite that speaks the wire protocol the way a
// real one does: it authenticates, heartbeats, reports a result for each
// assignment on its interval, reconciles script packages (manifest, missing
// blobs verified against their integrity, then its sync state), asks for the
// run secrets its collectors declare, follows config_updated and
// refresh_script_packages, honours shutdown, and reconnects with exponential
// back-off and jitter. It logs what it does in plain lines.
package simulator

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

// Config configures one simulated satellite.
type Config struct {
	URL      string
	ClientID string
	Token    string
	Version  string // reported in heartbeats; "sim-1.0.0" when empty

	HeartbeatInterval time.Duration // 15 s when zero
	// ResultInterval, when set, replaces every assignment's intervalSeconds.
	ResultInterval time.Duration
	// BackoffMin and BackoffMax bound reconnect delays (1 s and 30 s).
	BackoffMin, BackoffMax time.Duration
	// ReplyTimeout bounds waiting for authenticated and other replies (10 s).
	ReplyTimeout time.Duration
	// Log receives one plain line per thing the satellite does.
	Log io.Writer
	// HTTPClient fetches large blobs by URL.
	HTTPClient *http.Client
}

// ErrRefused is returned by Run when the backend refuses the credentials:
// retrying cannot help.
var ErrRefused = errors.New("credentials refused")

// State is what the satellite knows, for tests and the load tool.
type State struct {
	Authenticated     bool
	Connects          int
	Assignments       []satellite.Assignment
	LockfileHash      *string // what it reconciled to
	SyncStatus        satellite.SyncStatus
	Packages          map[string][]byte // integrity -> content
	ResultsSent       int
	SecretsReceived   map[string]int // collector id -> env vars received
	SecretsRefused    map[string]string
	Shutdowns         []string
	LastAuthFailure   string
	ConfigUpdates     int
	RefreshesReceived int
}

// Satellite is one simulated satellite.
type Satellite struct {
	cfg Config

	mu      sync.Mutex
	state   State
	waiters map[string]chan map[string]any // requestId or "manifest:<hash>"/"blob:<integrity>"
	conn    *websocket.Conn
	writeMu sync.Mutex
}

// New returns a satellite; Run connects it.
func New(cfg Config) *Satellite {
	if cfg.Version == "" {
		cfg.Version = "sim-1.0.0"
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 15 * time.Second
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.ReplyTimeout == 0 {
		cfg.ReplyTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	return &Satellite{cfg: cfg, state: State{Packages: map[string][]byte{}, SecretsReceived: map[string]int{}, SecretsRefused: map[string]string{}}}
}

// State returns a copy of what the satellite knows.
func (s *Satellite) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state
	st.Assignments = append([]satellite.Assignment(nil), s.state.Assignments...)
	st.Shutdowns = append([]string(nil), s.state.Shutdowns...)
	st.Packages = map[string][]byte{}
	for k, v := range s.state.Packages {
		st.Packages[k] = v
	}
	st.SecretsReceived = map[string]int{}
	for k, v := range s.state.SecretsReceived {
		st.SecretsReceived[k] = v
	}
	st.SecretsRefused = map[string]string{}
	for k, v := range s.state.SecretsRefused {
		st.SecretsRefused[k] = v
	}
	return st
}

func (s *Satellite) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Log, "%s %s %s\n", time.Now().UTC().Format("15:04:05.000"), s.cfg.ClientID, fmt.Sprintf(format, args...))
}

// Run connects and keeps the satellite connected until ctx ends (nil), or the
// backend refuses its credentials (ErrRefused). Every lost connection is
// retried after an exponentially growing, jittered delay.
func (s *Satellite) Run(ctx context.Context) error {
	attempt := 0
	for {
		err := s.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrRefused) {
			return err
		}
		if s.State().Authenticated {
			attempt = 0 // the session worked: start back-off afresh
		}
		s.mu.Lock()
		s.state.Authenticated = false
		s.mu.Unlock()
		delay := Backoff(attempt, s.cfg.BackoffMin, s.cfg.BackoffMax)
		attempt++
		s.logf("disconnected (%v); reconnecting in %s", err, delay.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// Backoff is "full jitter" exponential back-off: a uniform delay in
// [min/2, min(max, min*2^attempt)].
func Backoff(attempt int, lo, hi time.Duration) time.Duration {
	ceiling := hi
	if attempt < 30 {
		if d := lo << attempt; d > 0 && d < hi {
			ceiling = d
		}
	}
	floor := lo / 2
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(ceiling-floor)+1))
	return floor + time.Duration(n.Int64())
}

// session is one connection: authenticate, then serve until it closes.
func (s *Satellite) session(ctx context.Context) error {
	dialCtx, cancel := context.WithTimeout(ctx, s.cfg.ReplyTimeout)
	conn, resp, err := websocket.Dial(dialCtx, s.cfg.URL, &websocket.DialOptions{HTTPHeader: http.Header{"User-Agent": {"checkstack-satellite-simulator/" + s.cfg.Version}}})
	cancel()
	if err != nil {
		if resp != nil {
			return fmt.Errorf("handshake refused with HTTP %d", resp.StatusCode)
		}
		return err
	}
	conn.SetReadLimit(protocol.MaxMessageBytes + 1024)
	defer conn.CloseNow()
	s.mu.Lock()
	s.conn = conn
	s.state.Connects++
	s.waiters = map[string]chan map[string]any{}
	s.mu.Unlock()

	sessCtx, stop := context.WithCancel(ctx)
	defer stop()
	frames := make(chan map[string]any, 64)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, data, err := conn.Read(sessCtx)
			if err != nil {
				readErr <- err
				close(frames)
				return
			}
			var f map[string]any
			if json.Unmarshal(data, &f) != nil {
				s.logf("ignored a frame that is not JSON")
				continue
			}
			if s.deliver(f) {
				continue
			}
			frames <- f
		}
	}()

	if err := s.send(sessCtx, map[string]any{"type": "authenticate", "clientId": s.cfg.ClientID, "token": s.cfg.Token}); err != nil {
		return err
	}
	var first map[string]any
	select {
	case first = <-frames:
	case <-time.After(s.cfg.ReplyTimeout):
		return errors.New("no reply to authenticate")
	case <-ctx.Done():
		return nil
	}
	switch first["type"] {
	case protocol.TypeAuthenticated:
	case protocol.TypeAuthFailed:
		reason, _ := first["reason"].(string)
		s.mu.Lock()
		s.state.LastAuthFailure = reason
		s.mu.Unlock()
		s.logf("authentication refused: %s", reason)
		if reason == protocol.ReasonInvalidCredentials {
			return ErrRefused
		}
		return errors.New(reason)
	case nil:
		return fmt.Errorf("connection closed before authenticated: %v", <-readErr)
	default:
		return fmt.Errorf("unexpected first frame %v", first["type"])
	}
	s.mu.Lock()
	s.state.Authenticated = true
	s.mu.Unlock()
	assignments := decodeAssignments(first["assignments"])
	s.logf("authenticated: %d assignment(s), desired lockfile %s", len(assignments), describeHash(first["scriptPackagesLockfileHash"]))

	work := newScheduler(s, sessCtx)
	defer work.stop()
	work.apply(assignments)
	go s.reconcile(sessCtx, first["scriptPackagesLockfileHash"])

	heartbeat := time.NewTicker(s.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	started := time.Now()
	s.heartbeat(sessCtx, started)
	for {
		select {
		case <-ctx.Done():
			_ = conn.Close(websocket.StatusNormalClosure, "satellite stopping")
			return nil
		case <-heartbeat.C:
			s.heartbeat(sessCtx, started)
		case f, ok := <-frames:
			if !ok {
				return <-readErr
			}
			switch f["type"] {
			case protocol.TypeConfigUpdated:
				assignments := decodeAssignments(f["assignments"])
				s.mu.Lock()
				s.state.ConfigUpdates++
				s.mu.Unlock()
				s.logf("config_updated: %d assignment(s)", len(assignments))
				work.apply(assignments)
				if hash, ok := f["scriptPackagesLockfileHash"]; ok {
					go s.reconcile(sessCtx, hash)
				}
			case protocol.TypeRefreshScriptPackages:
				s.mu.Lock()
				s.state.RefreshesReceived++
				s.mu.Unlock()
				s.logf("refresh_script_packages: %v", f["lockfileHash"])
				go s.reconcile(sessCtx, f["lockfileHash"])
			case protocol.TypeShutdown:
				reason, _ := f["reason"].(string)
				s.mu.Lock()
				s.state.Shutdowns = append(s.state.Shutdowns, reason)
				s.mu.Unlock()
				s.logf("shutdown: %s", reason)
				_ = conn.Close(websocket.StatusNormalClosure, "shutdown")
				return fmt.Errorf("shut down: %s", reason)
			case protocol.TypeAuthFailed:
				s.logf("auth_failed: %v", f["reason"])
				return fmt.Errorf("auth_failed: %v", f["reason"])
			default:
				if msg, ok := f["message"].(string); ok {
					s.logf("gateway said %q (request %v)", msg, f["requestId"])
				} else {
					s.logf("ignored %v", f["type"])
				}
			}
		}
	}
}

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
		return nil, fmt.Errorf("no reply to %s", key)
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
	err := s.send(ctx, map[string]any{"type": "heartbeat", "version": s.cfg.Version, "uptimeSeconds": int(time.Since(started).Seconds())})
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

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// reconcile brings the local packages to the lockfile hash: manifest, every
// missing blob (verified), then reports its sync state.
func (s *Satellite) reconcile(ctx context.Context, hashValue any) {
	hash, ok := hashValue.(string)
	if !ok {
		return // no store, or nothing published
	}
	s.mu.Lock()
	if s.state.LockfileHash != nil && *s.state.LockfileHash == hash && s.state.SyncStatus == satellite.SyncReady {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.syncState(ctx, &hash, satellite.SyncSyncing, "")
	manifest, err := s.request(ctx, "manifest:"+hash, map[string]any{"type": protocol.TypeManifestRequest, "lockfileHash": hash})
	if err != nil {
		s.syncState(ctx, &hash, satellite.SyncError, err.Error())
		return
	}
	var entries []satellite.ManifestEntry
	b, _ := json.Marshal(manifest["entries"])
	_ = json.Unmarshal(b, &entries)
	if url, _ := manifest["manifestUrl"].(string); url != "" {
		var doc scriptpkg.Manifest
		body, err := s.fetch(url)
		if err == nil {
			err = json.Unmarshal(body, &doc)
		}
		if err != nil {
			s.syncState(ctx, &hash, satellite.SyncError, "manifest by URL: "+err.Error())
			return
		}
		entries = doc.Entries
	}
	fetched := 0
	for _, e := range entries {
		s.mu.Lock()
		_, have := s.state.Packages[e.Integrity]
		s.mu.Unlock()
		if have {
			continue
		}
		data, err := s.blob(ctx, e.Integrity)
		if err != nil {
			s.syncState(ctx, &hash, satellite.SyncError, fmt.Sprintf("%s@%s: %v", e.Name, e.Version, err))
			return
		}
		s.mu.Lock()
		s.state.Packages[e.Integrity] = data
		s.mu.Unlock()
		fetched++
	}
	s.mu.Lock()
	s.state.LockfileHash = &hash
	s.mu.Unlock()
	s.logf("script packages ready: lockfile %s, %d package(s), %d fetched", hash, len(entries), fetched)
	s.syncState(ctx, &hash, satellite.SyncReady, "")
}

func (s *Satellite) blob(ctx context.Context, integrity string) ([]byte, error) {
	reply, err := s.request(ctx, "blob:"+integrity, map[string]any{"type": protocol.TypeBlobRequest, "integrity": integrity})
	if err != nil {
		return nil, err
	}
	var data []byte
	switch {
	case reply["data"] != nil:
		data, err = base64.StdEncoding.DecodeString(fmt.Sprint(reply["data"]))
		if err != nil {
			return nil, fmt.Errorf("blob data is not base64")
		}
	case reply["url"] != nil:
		data, err = s.fetch(fmt.Sprint(reply["url"]))
		if err != nil {
			return nil, err
		}
		if size, ok := reply["size"].(float64); ok && int(size) != len(data) {
			return nil, fmt.Errorf("blob by URL has %d bytes, expected %d", len(data), int(size))
		}
		s.logf("fetched %d byte blob by URL", len(data))
	default:
		return nil, fmt.Errorf("blob %s does not exist", integrity)
	}
	if !scriptpkg.VerifyIntegrity(integrity, data) {
		return nil, fmt.Errorf("integrity mismatch")
	}
	return data, nil
}

func (s *Satellite) fetch(url string) ([]byte, error) {
	resp, err := s.cfg.HTTPClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", strings.SplitN(url, "?", 2)[0], resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func (s *Satellite) syncState(ctx context.Context, hash *string, status satellite.SyncStatus, message string) {
	s.mu.Lock()
	s.state.SyncStatus = status
	s.mu.Unlock()
	frame := map[string]any{"type": protocol.TypeScriptPackageSyncState, "lockfileHash": hash, "status": status}
	if message != "" {
		frame["errorMessage"] = message
		s.logf("script packages: %s", message)
	}
	_ = s.send(ctx, frame)
}

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
	latency := 20 + int(time.Now().UnixNano()%80)
	err := w.s.send(ctx, map[string]any{
		"type": protocol.TypeResult, "configId": a.ConfigID, "systemId": a.SystemID, "status": "healthy",
		"latencyMs": latency, "executedAt": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"result": map[string]any{"status": "healthy", "latencyMs": latency, "message": "simulated", "metadata": map[string]any{"connected": true}},
	})
	if err == nil {
		w.s.mu.Lock()
		w.s.state.ResultsSent++
		n := w.s.state.ResultsSent
		w.s.mu.Unlock()
		if n <= 3 || n%100 == 0 {
			w.s.logf("result %s/%s healthy in %d ms (%d sent)", a.ConfigID, a.SystemID, latency, n)
		}
	}
}
