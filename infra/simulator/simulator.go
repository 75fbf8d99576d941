// Package simulator is a satellite that speaks the wire protocol the way a
// real one does: it authenticates advertising its capabilities, heartbeats,
// reports a result for each assignment (and each of its environments) on its
// interval, reconciles script packages (manifest, missing blobs verified
// against their integrity, then its sync state), asks for the run and config
// secrets its checks reference, applies the sandbox policy, sends telemetry
// batches in a credit window, runs its capability configs (secrets of bound
// resources, statuses), follows config_updated and refresh_script_packages,
// honours shutdown, and reconnects with exponential back-off and jitter. It
// logs what it does in plain lines.
package simulator

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// SatellitePath is where a satellite opens its socket under its core URL,
// fixed in the Checkstack satellite client.
const SatellitePath = "/api/ws/satellite"

// SatelliteURL is the WebSocket URL a satellite configured with coreURL
// opens, built as the Checkstack satellite client builds it: a leading
// "http:" becomes "ws:" and "https:" becomes "wss:", one trailing slash is
// dropped, and SatellitePath is appended.
func SatelliteURL(coreURL string) string {
	switch {
	case strings.HasPrefix(coreURL, "http:"):
		coreURL = "ws:" + strings.TrimPrefix(coreURL, "http:")
	case strings.HasPrefix(coreURL, "https:"):
		coreURL = "wss:" + strings.TrimPrefix(coreURL, "https:")
	}
	return strings.TrimSuffix(coreURL, "/") + SatellitePath
}

// Config configures one simulated satellite.
type Config struct {
	// CoreURL is what a satellite is configured with; it connects to
	// SatelliteURL(CoreURL). URL, when set instead, is dialled as it is
	// (a stage URL such as ws://127.0.0.1:8765/prod).
	CoreURL  string
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
	// Capabilities are advertised in authenticate and heartbeats
	// (DefaultCapabilities when nil).
	Capabilities []string
	// TelemetryInterval is how often a telemetry batch is sent (0: none);
	// at most TelemetryWindow (4) wait for their ack at once.
	TelemetryInterval time.Duration
	TelemetryWindow   int
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
	// Keepalives counts keepalive frames (answers to some heartbeats).
	Keepalives int

	// SandboxPolicy is the policy scripts run under; nil: fail-closed.
	SandboxPolicy         json.RawMessage
	SandboxPolicyUpdates  int
	ConfigSecretsReceived map[string]int // configId -> secret fields received
	ConfigSecretsRefused  map[string]string
	// ResultsByEnvironment counts results sent per environment ("" for
	// environment-less runs).
	ResultsByEnvironment     map[string]int
	CapabilityConfigs        map[string]int // kind -> configs received
	CapabilitySecrets        map[string]int // kind/resource -> fields received
	CapabilitySecretsRefused map[string]string
	CapabilityStatusesSent   int
	TelemetryAcks            int
	TelemetryAccepted        int // items
	TelemetryRetries         int
	TelemetryDropped         int // batches settled with nothing accepted
}

// Satellite is one simulated satellite.
type Satellite struct {
	cfg Config

	mu        sync.Mutex
	state     State
	waiters   map[string]chan map[string]any // requestId or "manifest:<hash>"/"blob:<integrity>"
	conn      *websocket.Conn
	writeMu   sync.Mutex
	nextBatch int64
}

// New returns a satellite; Run connects it.
func New(cfg Config) *Satellite {
	if cfg.Version == "" {
		cfg.Version = "sim-1.0.0"
	}
	if cfg.URL == "" && cfg.CoreURL != "" {
		cfg.URL = SatelliteURL(cfg.CoreURL)
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
	if cfg.Capabilities == nil {
		cfg.Capabilities = DefaultCapabilities
	}
	if cfg.TelemetryWindow <= 0 {
		cfg.TelemetryWindow = 4
	}
	return &Satellite{cfg: cfg, state: State{
		Packages: map[string][]byte{}, SecretsReceived: map[string]int{}, SecretsRefused: map[string]string{},
		ConfigSecretsReceived: map[string]int{}, ConfigSecretsRefused: map[string]string{}, ResultsByEnvironment: map[string]int{},
		CapabilityConfigs: map[string]int{}, CapabilitySecrets: map[string]int{}, CapabilitySecretsRefused: map[string]string{},
	}}
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
	st.SecretsRefused = maps.Clone(s.state.SecretsRefused)
	st.SandboxPolicy = append(json.RawMessage(nil), s.state.SandboxPolicy...)
	st.ConfigSecretsReceived = maps.Clone(s.state.ConfigSecretsReceived)
	st.ConfigSecretsRefused = maps.Clone(s.state.ConfigSecretsRefused)
	st.ResultsByEnvironment = maps.Clone(s.state.ResultsByEnvironment)
	st.CapabilityConfigs = maps.Clone(s.state.CapabilityConfigs)
	st.CapabilitySecrets = maps.Clone(s.state.CapabilitySecrets)
	st.CapabilitySecretsRefused = maps.Clone(s.state.CapabilitySecretsRefused)
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

	if err := s.send(sessCtx, map[string]any{"type": "authenticate", "clientId": s.cfg.ClientID, "token": s.cfg.Token, "capabilities": s.cfg.Capabilities}); err != nil {
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

	s.applySandboxPolicy(first["sandboxPolicy"], "authenticated")
	work := newScheduler(s, sessCtx)
	defer work.stop()
	work.apply(assignments)
	go s.reconcile(sessCtx, first["scriptPackagesLockfileHash"])
	caps := newCapabilities(s, sessCtx)
	go s.telemetry(sessCtx)

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
			case protocol.TypeSandboxPolicy:
				s.applySandboxPolicy(f["policy"], "sandbox_policy")
			case protocol.TypeCapabilityConfig:
				kind, _ := f["kind"].(string)
				caps.apply(kind, f["payload"])
			case protocol.TypeShutdown:
				reason, _ := f["reason"].(string)
				s.mu.Lock()
				s.state.Shutdowns = append(s.state.Shutdowns, reason)
				s.mu.Unlock()
				s.logf("shutdown: %s", reason)
				_ = conn.Close(websocket.StatusNormalClosure, "shutdown")
				return fmt.Errorf("shut down: %s", reason)
			case protocol.TypeKeepalive:
				s.mu.Lock()
				s.state.Keepalives++
				s.mu.Unlock()
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
