package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// API Gateway's WebSocket limits.
const (
	MaxMessageBytes           = 128 * 1024
	DefaultIdleTimeout        = 10 * time.Minute
	DefaultMaxDuration        = 2 * time.Hour
	DefaultIntegrationTimeout = 29 * time.Second
)

// Config configures a Gateway.
type Config struct {
	API *API
	// Front, when set, is the CloudFront distribution before the API: a
	// request no route of this listener serves goes through its
	// viewer-request function and origin request policy, as satellites'
	// requests to their core URL do on AWS.
	Front *Front
	// HTTPAPI, when set, is served on the same listener (payload 2.0).
	HTTPAPI *HTTPAPI
	// Lambda, when set, serves Lambda's Invoke API on the same listener
	// (the functions invoke each other through it).
	Lambda  *LambdaAPI
	Invoker Invoker
	// Schedules run on their rate while the gateway serves; nil runs none.
	Schedules []Schedule
	// ScheduleEvery, when set, replaces every schedule's interval (tests).
	ScheduleEvery time.Duration
	// IdleTimeout, MaxDuration and IntegrationTimeout default to API
	// Gateway's 10 min, 2 h and 29 s.
	IdleTimeout        time.Duration
	MaxDuration        time.Duration
	IntegrationTimeout time.Duration
	// APIID names the API in events; random when empty.
	APIID  string
	Region string
	Log    *slog.Logger
	// Now is the clock for event timestamps; time.Now when nil.
	Now func() time.Time
	// OnInvoke, when set, is told about every finished route invocation
	// (load tests measure with it).
	OnInvoke func(Invocation)
	// MaxInFlight bounds the frames of one connection being handled at once
	// (DefaultMaxInFlight when zero). Beyond it the gateway stops reading the
	// socket until one finishes, so a client that pipelines thousands of
	// frames is slowed by TCP flow control instead of exhausting this
	// machine. API Gateway scales out instead; locally one process serves
	// every function.
	MaxInFlight int
}

// DefaultMaxInFlight is the local gateway's bound on frames of one
// connection handled at once.
const DefaultMaxInFlight = 8

// Invocation describes one finished route invocation.
type Invocation struct {
	ConnectionID string
	Route        string
	Started      time.Time // when the frame or handshake arrived
	Duration     time.Duration
	Err          error
	// Instance is the function instance that served it, and Cold whether
	// it was started for it (set when the invoker runs instances).
	Instance string
	Cold     bool
	// Order is the order in which the function's events were given an
	// instance.
	Order int64
}

// Gateway serves WebSocket clients and the Management API on one listener.
type Gateway struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	conns   map[string]*connection
	host    string
	closing bool

	wg       sync.WaitGroup // connections and in-flight invocations
	stopOnce sync.Once
	stop     chan struct{}
}

// New returns a Gateway; Serve runs it.
func New(cfg Config) *Gateway {
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxDuration == 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	if cfg.IntegrationTimeout == 0 {
		cfg.IntegrationTimeout = DefaultIntegrationTimeout
	}
	if cfg.APIID == "" {
		cfg.APIID = newAPIID()
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Gateway{cfg: cfg, log: cfg.Log, conns: map[string]*connection{}, stop: make(chan struct{})}
}

// Start serves on l in the background; URL and ManagementURL are valid when
// it returns. Errors of the server after that are logged.
func (g *Gateway) Start(l net.Listener) {
	g.setHost(l)
	go func() {
		if err := g.Serve(l); err != nil {
			g.log.Error("gateway stopped", "error", err.Error())
		}
	}()
}

func (g *Gateway) setHost(l net.Listener) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.host = l.Addr().String()
}

// Serve accepts connections on l until Shutdown. It starts the schedules.
func (g *Gateway) Serve(l net.Listener) error {
	g.setHost(l)
	g.mu.Lock()
	if !g.closing {
		for _, s := range g.cfg.Schedules {
			g.wg.Add(1)
			go g.runSchedule(s)
		}
	}
	g.mu.Unlock()
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-g.stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown closes every connection with 1001 Going away (each gets its
// $disconnect), stops the schedules, waits for in-flight invocations, then
// stops the Lambda API (asynchronous events still waiting are dropped).
func (g *Gateway) Shutdown() {
	g.stopOnce.Do(func() { close(g.stop) })
	g.mu.Lock()
	g.closing = true
	conns := make([]*connection, 0, len(g.conns))
	for _, c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.close(websocket.StatusGoingAway, "Going away")
	}
	g.wg.Wait()
	if g.cfg.Lambda != nil {
		g.cfg.Lambda.Stop()
	}
}

// CoreURL is the core URL a satellite is configured with: the front's
// address ("" without a front). A satellite opens its own path under it.
func (g *Gateway) CoreURL() string {
	if g.cfg.Front == nil {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return "http://" + g.host
}

// URL is the ws:// URL clients connect to.
func (g *Gateway) URL() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return "ws://" + g.host + "/" + g.cfg.API.Stage
}

// ManagementURL is the Management API base URL (https://host/stage on AWS).
func (g *Gateway) ManagementURL() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return "http://" + g.host + "/" + g.cfg.API.Stage
}

// Connections returns the number of open connections.
func (g *Gateway) Connections() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id, ok := g.managementPath(r); ok {
		g.serveManagement(w, r, id)
		return
	}
	if g.cfg.Lambda != nil && IsInvokePath(r.URL.Path) {
		g.cfg.Lambda.ServeHTTP(w, r)
		return
	}
	if g.serveStage(w, r) || g.serveHTTPAPI(w, r) {
		return
	}
	if g.cfg.Front != nil {
		g.serveFront(w, r)
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
}

// serveStage serves what execute-api serves under the stage: the
// WebSocket API at /{stage} (and /{stage}/, where CloudFront's origin path
// puts it), 403 Forbidden for any longer path. It reports whether the path
// was the stage's.
func (g *Gateway) serveStage(w http.ResponseWriter, r *http.Request) bool {
	stage := "/" + g.cfg.API.Stage
	switch {
	case r.URL.Path == stage || r.URL.Path == stage+"/":
	case strings.HasPrefix(r.URL.Path, stage+"/"):
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
		return true
	default:
		return false
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		writeJSON(w, http.StatusUpgradeRequired, map[string]string{"message": "Expected a WebSocket upgrade"})
		return true
	}
	g.serveWebSocket(w, r)
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (g *Gateway) connection(id string) (*connection, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.conns[id]
	return c, ok
}

func (g *Gateway) remove(c *connection) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.conns, c.id)
}
