// Package lifecyclelog is the adapter of satellite.LifecycleSink used when no
// event bus is configured: each event becomes one structured log line, and,
// when a writer is given, one JSON line appended to it.
package lifecyclelog

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Sink implements satellite.LifecycleSink.
type Sink struct {
	log *slog.Logger
	mu  sync.Mutex
	out io.Writer
}

var _ satellite.LifecycleSink = (*Sink)(nil)

// New returns a sink that logs to log and, if out is non-nil, appends one JSON
// object per event to out.
func New(log *slog.Logger, out io.Writer) *Sink { return &Sink{log: log, out: out} }

// Line is one JSON line written to out.
type Line struct {
	DetailType string                     `json:"detailType"`
	Time       time.Time                  `json:"time"`
	Detail     satellite.LifecyclePayload `json:"detail"`
}

// Emit implements satellite.LifecycleSink.
func (s *Sink) Emit(ctx context.Context, e satellite.LifecycleEvent) error {
	s.log.LogAttrs(ctx, slog.LevelInfo, "lifecycle event",
		slog.String("detailType", e.Edge.EventType()),
		slog.String("satelliteId", e.SatelliteID),
		slog.String("status", string(e.Status)))
	if s.out == nil {
		return nil
	}
	b, err := json.Marshal(Line{DetailType: e.Edge.EventType(), Time: e.At.UTC(), Detail: e.Payload()})
	if err != nil {
		return satellite.Wrap(err, satellite.EINTERNAL, "encode lifecycle event")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.out.Write(append(b, '\n'))
	return satellite.Wrap(err, satellite.EINTERNAL, "append lifecycle event")
}

// AppendFile is a writer that appends each write to the file at its path,
// opening and closing it every time: events are rare, and no handle stays
// open for a function instance's lifetime.
type AppendFile string

// Write implements io.Writer.
func (p AppendFile) Write(b []byte) (int, error) {
	f, err := os.OpenFile(string(p), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}
