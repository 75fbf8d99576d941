package testenv

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// ManagementAPI is an HTTP server that speaks the API Gateway Management API
// (@connections) for connections the test declares open. It records what the
// backend posts and closes, so tests can read the replies a satellite would
// have received.
type ManagementAPI struct {
	URL string

	mu     sync.Mutex
	open   map[string]time.Time
	posts  map[string][][]byte
	closed map[string]bool
	// Requests counts every request by method.
	requests map[string]int
	onPost   func(connectionID string)
}

// OnPost calls fn after each post to a live connection is recorded, before
// it is answered (tests move a clock with it).
func (m *ManagementAPI) OnPost(fn func(connectionID string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onPost = fn
}

// NewManagementAPI starts the server; it stops when the test ends.
func NewManagementAPI(tb testing.TB) *ManagementAPI {
	tb.Helper()
	m := &ManagementAPI{
		open:     map[string]time.Time{},
		posts:    map[string][][]byte{},
		closed:   map[string]bool{},
		requests: map[string]int{},
	}
	srv := httptest.NewServer(http.HandlerFunc(m.serve))
	tb.Cleanup(srv.Close)
	m.URL = srv.URL
	return m
}

// Open declares a connection open.
func (m *ManagementAPI) Open(connectionID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.open[connectionID] = time.Now()
}

// Drop makes a connection gone without the backend knowing (as when a
// satellite vanished): later posts get 410.
func (m *ManagementAPI) Drop(connectionID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.open, connectionID)
}

// Posts returns the frames posted to a connection.
func (m *ManagementAPI) Posts(connectionID string) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]byte(nil), m.posts[connectionID]...)
}

// Frames decodes the frames posted to a connection.
func (m *ManagementAPI) Frames(tb testing.TB, connectionID string) []map[string]any {
	tb.Helper()
	var frames []map[string]any
	for _, p := range m.Posts(connectionID) {
		var f map[string]any
		if err := json.Unmarshal(p, &f); err != nil {
			tb.Fatalf("posted frame is not JSON: %v", err)
		}
		frames = append(frames, f)
	}
	return frames
}

// FramesOf decodes the frames of one type posted to a connection into T,
// strictly: a frame with a field T does not declare fails the test, so a
// test that reads a frame through its type also holds the wire to it.
func FramesOf[T any](tb testing.TB, m *ManagementAPI, connectionID, frameType string) []T {
	tb.Helper()
	var out []T
	for _, p := range m.Posts(connectionID) {
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(p, &head); err != nil {
			tb.Fatalf("posted frame is not JSON: %v", err)
		}
		if head.Type != frameType {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(string(p)))
		dec.DisallowUnknownFields()
		var f T
		if err := dec.Decode(&f); err != nil {
			tb.Fatalf("%s frame %s does not decode into %T: %v", frameType, p, f, err)
		}
		out = append(out, f)
	}
	return out
}

// Closed reports whether the backend closed a connection.
func (m *ManagementAPI) Closed(connectionID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed[connectionID]
}

// Requests returns how many requests of a method the server received.
func (m *ManagementAPI) Requests(method string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests[method]
}

func apiError(w http.ResponseWriter, status int, errorType, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", errorType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": message})
}

func (m *ManagementAPI) serve(w http.ResponseWriter, r *http.Request) {
	_, id, ok := strings.Cut(r.URL.Path, "/@connections/")
	if !ok || id == "" {
		apiError(w, http.StatusNotFound, "NotFoundException", "no such route")
		return
	}
	body, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[r.Method]++
	connectedAt, live := m.open[id]
	switch r.Method {
	case http.MethodPost:
		if len(body) > 128*1024 {
			apiError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException", "payload too large")
			return
		}
		if !live {
			apiError(w, http.StatusGone, "GoneException", "connection is gone")
			return
		}
		m.posts[id] = append(m.posts[id], body)
		if m.onPost != nil {
			m.onPost(id)
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodDelete:
		if !live {
			apiError(w, http.StatusGone, "GoneException", "connection is gone")
			return
		}
		delete(m.open, id)
		m.closed[id] = true
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet:
		if !live {
			apiError(w, http.StatusGone, "GoneException", "connection is gone")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"connectedAt":  connectedAt.UTC().Format(time.RFC3339),
			"lastActiveAt": connectedAt.UTC().Format(time.RFC3339),
			"identity":     map[string]string{"sourceIp": "127.0.0.1", "userAgent": "testenv"},
		})
	default:
		apiError(w, http.StatusMethodNotAllowed, "BadRequestException", "method not allowed")
	}
}
