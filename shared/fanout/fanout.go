// Package fanout pushes one frame to every authenticated connection
// asynchronously, in chunks that each finish well inside a Lambda's
// deadline. Starter (in the admin function) stores a job and hands one task
// per segment of the connections to the fan-out function; Worker (the
// fan-out function) claims a segment, posts to its connections, checkpoints
// its progress in the job, and before its deadline gives the segment up and
// hands the rest on to a fresh invocation of itself.
//
// Tasks are delivered at least once: a worker claims a segment with a lease
// (until its own deadline), so of two deliveries only one works at a time,
// and progress is recorded only by the lease's holder, together with the
// cursor it reached, so each connection is counted once. A frame may reach
// a connection twice (after a worker died between posting and
// checkpointing); the frames fanned out (refresh_script_packages,
// sandbox_policy) are idempotent for the satellite.
package fanout

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Defaults.
const (
	// DefaultSegments is how many workers run a job in parallel.
	DefaultSegments = 4
	// MaxSegments bounds Segments: each segment is a map entry of the job
	// item and a parallel scan segment.
	MaxSegments = 64
	// JobRetention is how long a job can be read after it started.
	JobRetention = 24 * time.Hour
)

// Request is a fan-out to start.
type Request struct {
	// Kind is the frame's type, Subject what it is about (for operators).
	Kind    string
	Subject string
	// Frame is the encoded frame (protocol.Encode).
	Frame []byte
	// LateSince, when set, adds a late pass: once LateNotBefore has passed,
	// the connections that authenticated at or after LateSince get the
	// frame again (an authentication racing the change may have answered
	// with what was stored before it).
	LateSince     time.Time
	LateNotBefore time.Time
}

// Starter starts fan-out jobs and reads them back.
type Starter struct {
	Jobs  satellite.FanoutJobs
	Queue satellite.FanoutQueue
	// Segments is how many workers run each job (DefaultSegments when 0).
	Segments int
	Now      func() time.Time
	Log      *slog.Logger
}

// Start stores a job and hands each of its segments to a worker. The job is
// returned as started: its progress is read with Job. EINTERNAL when a
// segment could not be handed on: the job then records why (StartError,
// naming one failure), and the segments that did start run to their end.
func (s *Starter) Start(ctx context.Context, r Request) (satellite.FanoutJob, error) {
	n := s.Segments
	if n <= 0 {
		n = DefaultSegments
	}
	n = min(n, MaxSegments)
	id, err := uuid.NewRandom()
	if err != nil {
		return satellite.FanoutJob{}, satellite.Wrap(err, satellite.EINTERNAL, "generate fan-out job id")
	}
	now := s.Now().UTC()
	job := satellite.FanoutJob{
		ID: id.String(), Kind: r.Kind, Subject: r.Subject, Frame: r.Frame,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(JobRetention),
		Segments: make([]satellite.FanoutSegment, n),
	}
	if !r.LateSince.IsZero() {
		job.LateSince, job.LateNotBefore = r.LateSince.UTC(), r.LateNotBefore.UTC()
	}
	if err := s.Jobs.CreateFanoutJob(ctx, job); err != nil {
		return satellite.FanoutJob{}, err
	}
	// Every segment is handed on, also when one fails (those that started
	// run to their end). One at a time: a few tens of milliseconds each.
	var failed error
	for i := range n {
		if err := s.Queue.EnqueueFanout(ctx, satellite.FanoutTask{JobID: job.ID, Segment: i}); err != nil {
			s.Log.LogAttrs(ctx, slog.LevelError, "fan-out segment not handed to a worker", slog.String("jobId", job.ID),
				slog.Int("segment", i), slog.String("error", err.Error()))
			failed = err
		}
	}
	if failed != nil {
		job.StartError = "not every segment could be handed to a worker: " + satellite.ErrorMessage(failed)
		if ferr := s.Jobs.FailFanoutJob(ctx, job.ID, job.StartError); ferr != nil {
			s.Log.LogAttrs(ctx, slog.LevelError, "fan-out start failure not recorded", slog.String("jobId", job.ID), slog.String("error", ferr.Error()))
		}
		return job, satellite.Wrap(failed, satellite.EINTERNAL, job.StartError)
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "fan-out started", slog.String("jobId", job.ID), slog.String("kind", job.Kind), slog.Int("segments", n))
	return job, nil
}

// Job returns a job as stored now. ENOTFOUND when there is none or it
// expired.
func (s *Starter) Job(ctx context.Context, id string) (satellite.FanoutJob, error) {
	// Job ids are UUIDs: anything longer is no job (and no key to read).
	if id == "" || len(id) > 36 {
		return satellite.FanoutJob{}, satellite.Errorf(satellite.ENOTFOUND, "no fan-out job %q", id)
	}
	return s.Jobs.FanoutJob(ctx, id, s.Now())
}
