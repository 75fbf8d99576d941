package fanout

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/checkstack/satellite-backend/shared/metrics"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/push"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Worker defaults.
const (
	DefaultConcurrency = 16
	// DefaultPageSize is how many records one scan request reads: about
	// 150 KB of the index, well under a scan page's 1 MB.
	DefaultPageSize = 500
	// DefaultMargin is how long before its deadline a worker stops posting:
	// the posts in flight, the last checkpoint and the hand-on fit in it.
	DefaultMargin = 5 * time.Second
	// DefaultCheckpointEvery is how often a worker records its progress.
	DefaultCheckpointEvery = time.Second
	// NoDeadlineBudget is how long a worker runs when its context has no
	// deadline (Lambda always gives one).
	NoDeadlineBudget = time.Minute
)

// Worker works through one segment of a fan-out job per task.
type Worker struct {
	Jobs        satellite.FanoutJobs
	Queue       satellite.FanoutQueue
	Connections satellite.ConnectionScan
	Sender      *push.Sender
	// ManagementURL is the Management API URL of the WebSocket stage.
	ManagementURL string
	// Concurrency bounds parallel posts (DefaultConcurrency when 0);
	// PageSize is how many records one scan request reads
	// (DefaultPageSize); Margin and CheckpointEvery default to
	// DefaultMargin and DefaultCheckpointEvery.
	Concurrency     int
	PageSize        int
	Margin          time.Duration
	CheckpointEvery time.Duration
	// Now is the clock every decision is made with (leases, when to stop,
	// when to checkpoint); the context's deadline is read once, as the
	// time the invocation has left.
	Now func() time.Time
	Log *slog.Logger
	// Metrics is written at the end of every invocation; nil records
	// nothing.
	Metrics *metrics.Recorder
	// Settings reads the fleet-wide settings jobs push (the published
	// lockfile, the sandbox policy), so that a job a newer change
	// superseded pushes nothing more: its frame must never reach a
	// satellite after the newer one's. nil skips the check.
	Settings func(ctx context.Context) (satellite.Settings, error)
}

// Superseded reports whether st holds a newer change of job's kind than the
// one job pushes: another lockfile published, or a sandbox policy stored
// after job's.
func Superseded(st satellite.Settings, job satellite.FanoutJob) bool {
	switch job.Kind {
	case protocol.TypeRefreshScriptPackages:
		return st.LockfileHash != nil && *st.LockfileHash != job.Subject
	case protocol.TypeSandboxPolicy:
		at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(job.Subject, PolicySubjectPrefix))
		return err == nil && st.SandboxPolicyUpdatedAt.After(at.Truncate(time.Millisecond))
	}
	return false
}

// PolicySubjectPrefix starts the Subject of a sandbox-policy job, followed
// by the policy's update time (RFC 3339, nanoseconds).
const PolicySubjectPrefix = "updated "

// Handle is the fan-out function's Lambda handler. It returns an error only
// when the task should be retried (Lambda retries a failed asynchronous
// invocation twice): a task for a segment held by another worker, done, or
// of an expired job is done with.
func (w *Worker) Handle(ctx context.Context, t satellite.FanoutTask) error {
	defer w.Metrics.FlushAll()
	_, err := w.Run(ctx, t)
	return err
}

// Outcome says what one task did.
type Outcome struct {
	// Claimed is false when the task found its segment held, done or
	// gone, and did nothing.
	Claimed bool
	// Counts are the connections processed in each pass.
	Counts, Late satellite.FanoutCounts
	// Checkpoints recorded; HandedOn when the segment was given to a fresh
	// invocation before the deadline; SegmentDone when it has nothing left.
	Checkpoints int
	HandedOn    bool
	SegmentDone bool
}

// Run works on a task's segment until it is done or the deadline nears,
// then hands the rest on.
func (w *Worker) Run(ctx context.Context, t satellite.FanoutTask) (Outcome, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(NoDeadlineBudget)
	}
	budget := time.Until(deadline)
	if budget <= 0 {
		return Outcome{}, satellite.Errorf(satellite.EINTERNAL, "fan-out task of job %s segment %d started after its deadline", t.JobID, t.Segment)
	}
	margin := w.Margin
	if margin <= 0 {
		margin = DefaultMargin
	}
	// A quarter of the invocation is always left for posting, however
	// short it is.
	margin = min(margin, budget/4)
	start := w.Now()
	r := &segmentRun{w: w, task: t, owner: uuid.NewString(), lease: start.Add(budget), attrs: []slog.Attr{slog.String("jobId", t.JobID), slog.Int("segment", t.Segment)}}
	r.stopAt = r.lease.Add(-margin)

	job, err := w.Jobs.ClaimFanoutSegment(ctx, t.JobID, t.Segment, r.owner, r.lease, start)
	switch {
	case err == nil:
	case satellite.Is(err, satellite.ECONFLICT, satellite.ENOTFOUND):
		w.Log.LogAttrs(ctx, slog.LevelInfo, "fan-out task skipped", append(r.attrs, slog.String("reason", satellite.ErrorMessage(err)))...)
		return Outcome{}, nil
	default:
		return Outcome{}, err
	}
	r.job, r.out.Claimed, r.seq = job, true, job.Segments[t.Segment].Checkpoints
	if w.Settings != nil {
		// Checked at every claim (a segment is claimed again at least
		// once a minute as it is handed on). A failed read pushes on.
		if st, err := w.Settings(ctx); err == nil && Superseded(st, job) {
			w.Log.LogAttrs(ctx, slog.LevelInfo, "fan-out task superseded by a newer change; segment done", r.attrs...)
			return r.out, r.finish(ctx, job.Segments[t.Segment].Pass)
		}
	}
	// Posts and scans end before the lease does: what is left of it records
	// the last checkpoint and hands the segment on.
	workCtx, cancel := context.WithDeadline(ctx, deadline.Add(-margin/2))
	defer cancel()
	err = r.run(ctx, workCtx)
	w.Log.LogAttrs(ctx, slog.LevelInfo, "fan-out task ran", append(r.attrs,
		slog.Int("sent", r.out.Counts.Sent), slog.Int("gone", r.out.Counts.Gone), slog.Int("failed", r.out.Counts.Failed),
		slog.Int("lateSent", r.out.Late.Sent), slog.Int("checkpoints", r.out.Checkpoints),
		slog.Bool("handedOn", r.out.HandedOn), slog.Bool("segmentDone", r.out.SegmentDone))...)
	return r.out, err
}

// segmentRun is one invocation's work on one segment while it holds it.
type segmentRun struct {
	w      *Worker
	task   satellite.FanoutTask
	job    satellite.FanoutJob
	owner  string
	lease  time.Time
	stopAt time.Time
	// seq is the segment's checkpoint count this run's next checkpoint
	// follows.
	seq   int
	attrs []slog.Attr
	out   Outcome

	// pending are the outcomes of posts since the last checkpoint.
	mu      sync.Mutex
	pending satellite.FanoutCounts
	posts   sync.WaitGroup
}

func (r *segmentRun) concurrency() int {
	if r.w.Concurrency > 0 {
		return r.w.Concurrency
	}
	return DefaultConcurrency
}

func (r *segmentRun) pageSize() int {
	if r.w.PageSize > 0 {
		return r.w.PageSize
	}
	return DefaultPageSize
}

func (r *segmentRun) checkpointEvery() time.Duration {
	if r.w.CheckpointEvery > 0 {
		return r.w.CheckpointEvery
	}
	return DefaultCheckpointEvery
}

// stopping reports whether the deadline is near enough to stop posting.
func (r *segmentRun) stopping() bool { return !r.w.Now().Before(r.stopAt) }

// run works the segment. ctx is the invocation's; workCtx ends earlier and
// bounds posts and scans.
func (r *segmentRun) run(ctx, workCtx context.Context) error {
	seg := r.job.Segments[r.task.Segment]
	counted := make(chan struct{})
	if seg.Pass == satellite.PassAll && !seg.Counted {
		go r.count(workCtx, counted)
	} else {
		close(counted)
	}
	pass, cursor := seg.Pass, seg.Cursor
	for {
		if pass == satellite.PassLate && !r.waitForLatePass(workCtx) {
			break
		}
		exhausted, next, err := r.pass(workCtx, pass, cursor)
		r.posts.Wait()
		if err != nil {
			if satellite.ErrorCode(err) != satellite.ECONFLICT {
				// What was posted is recorded; the retry continues from
				// there.
				_ = r.checkpoint(ctx, pass, pass, next, false)
			}
			<-counted
			return r.lost(ctx, err)
		}
		if !exhausted {
			cursor = next
			break
		}
		if pass == satellite.PassAll && r.job.HasLatePass() {
			if err := r.checkpoint(ctx, pass, satellite.PassLate, "", false); err != nil {
				<-counted
				return r.lost(ctx, err)
			}
			pass, cursor = satellite.PassLate, ""
			continue
		}
		<-counted
		return r.lost(ctx, r.finish(ctx, pass))
	}
	// The deadline is near: record where the segment stands and hand it on.
	if err := r.checkpoint(ctx, pass, pass, cursor, false); err != nil {
		<-counted
		return r.lost(ctx, err)
	}
	<-counted
	if err := r.w.Jobs.ReleaseFanoutSegment(ctx, r.task.JobID, r.task.Segment, r.owner, r.lease); err != nil {
		// Still held until this invocation's deadline, the hand-on would
		// find it taken: Lambda's retry of this task, a minute later,
		// claims it instead.
		return err
	}
	if err := r.w.Queue.EnqueueFanout(ctx, r.task); err != nil {
		// Released: Lambda's retry of this task claims the segment again.
		return err
	}
	r.out.HandedOn = true
	return nil
}

// lost turns losing the segment (another worker holds it now) into a done
// task; other errors release the segment and are retried.
func (r *segmentRun) lost(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case satellite.Is(err, satellite.ECONFLICT):
		r.w.Log.LogAttrs(ctx, slog.LevelWarn, "fan-out segment lost to another worker", append(r.attrs, slog.String("error", err.Error()))...)
		return nil
	}
	r.release(ctx)
	return err
}

// finish records the segment done (the job is finished when it was the
// last).
func (r *segmentRun) finish(ctx context.Context, pass int) error {
	done, err := r.record(ctx, pass, pass, "", true)
	if err != nil {
		return err
	}
	r.out.SegmentDone = true
	if done >= len(r.job.Segments) {
		r.w.Log.LogAttrs(ctx, slog.LevelInfo, "fan-out job finished", r.attrs...)
	}
	return nil
}

// waitForLatePass waits until the late pass may start. false when it could
// not start before the deadline: the segment is handed on.
func (r *segmentRun) waitForLatePass(ctx context.Context) bool {
	wait := r.job.LateNotBefore.Sub(r.w.Now())
	if wait <= 0 {
		return true
	}
	if !r.w.Now().Add(wait).Before(r.stopAt) {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pass posts to the segment's connections of one pass from cursor on,
// checkpointing as it goes, until the segment has no more (exhausted) or
// the deadline nears. next is where the segment continues: after the last
// connection a post was started for. The next page is read while the
// current one is posted to.
func (r *segmentRun) pass(ctx context.Context, pass int, cursor string) (exhausted bool, next string, err error) {
	frame := json.RawMessage(r.job.Frame)
	slots := make(chan struct{}, r.concurrency())
	lastCheckpoint := r.w.Now()
	next = cursor
	scanCtx, stopScanning := context.WithCancel(ctx)
	defer stopScanning()
	pages := r.scan(scanCtx, cursor)
	for {
		if r.stopping() {
			return false, next, nil
		}
		var read scanned
		select {
		case read = <-pages:
		case <-ctx.Done():
			return false, next, ctx.Err()
		}
		if read.err != nil {
			return false, next, read.err
		}
		page := read.page
		for i, c := range page.Connections {
			if pass == satellite.PassLate && c.AuthenticatedAt.Before(r.job.LateSince) {
				next = page.Cursors[i]
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return false, next, ctx.Err()
			}
			// Decided when a post can start, not before waiting for one.
			if r.stopping() {
				<-slots
				return false, next, nil
			}
			next = page.Cursors[i]
			r.posts.Add(1)
			go func() {
				defer func() { <-slots; r.posts.Done() }()
				r.post(ctx, c, frame)
			}()
		}
		if page.Next == "" {
			return true, "", nil
		}
		next = page.Next
		if r.w.Now().Sub(lastCheckpoint) >= r.checkpointEvery() {
			r.posts.Wait()
			if err := r.checkpoint(ctx, pass, pass, next, false); err != nil {
				return false, next, err
			}
			lastCheckpoint = r.w.Now()
		}
	}
}

// scanned is one page read, or why it could not be.
type scanned struct {
	page satellite.ConnectionPage
	err  error
}

// scan reads the segment's pages from cursor on, one ahead of the reader,
// until the segment has no more, a read fails, or ctx ends.
func (r *segmentRun) scan(ctx context.Context, cursor string) <-chan scanned {
	pages := make(chan scanned, 1)
	go func() {
		for {
			page, err := r.w.Connections.ScanAuthenticatedConnections(ctx, r.task.Segment, len(r.job.Segments), cursor, r.pageSize(), r.w.Now())
			select {
			case pages <- scanned{page, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || page.Next == "" {
				return
			}
			cursor = page.Next
		}
	}()
	return pages
}

// post sends the frame to one connection and counts the outcome. A gone
// connection is cleaned up by the sender.
func (r *segmentRun) post(ctx context.Context, c satellite.Connection, frame json.RawMessage) {
	err := r.w.Sender.Send(ctx, r.w.ManagementURL, c.ID, frame)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil:
		r.pending.Sent++
	case satellite.Is(err, satellite.EGONE):
		r.pending.Gone++
	default:
		r.pending.Failed++
		r.w.Log.LogAttrs(ctx, slog.LevelError, "fan-out post not delivered", append(r.attrs,
			slog.String("connectionId", c.ID), slog.String("satelliteId", c.SatelliteID), slog.String("error", err.Error()))...)
	}
}

// take returns the counts since the last checkpoint and starts afresh.
func (r *segmentRun) take() satellite.FanoutCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.pending
	r.pending = satellite.FanoutCounts{}
	return c
}

// checkpoint records the counts since the last checkpoint (made in pass)
// and where the segment continues.
func (r *segmentRun) checkpoint(ctx context.Context, pass, nextPass int, cursor string, done bool) error {
	_, err := r.record(ctx, pass, nextPass, cursor, done)
	return err
}

// record writes a checkpoint and returns how many segments are done.
// Counts that could not be recorded are given back, so a later checkpoint
// records them.
func (r *segmentRun) record(ctx context.Context, pass, nextPass int, cursor string, done bool) (int, error) {
	c := r.take()
	segmentsDone, err := r.w.Jobs.CheckpointFanoutSegment(ctx, r.task.JobID, satellite.FanoutCheckpoint{
		Segment: r.task.Segment, Owner: r.owner, LeaseUntil: r.lease, Seq: r.seq, Pass: pass, Counts: c,
		NextPass: nextPass, Cursor: cursor, Done: done, At: r.w.Now(),
	})
	if err != nil {
		r.mu.Lock()
		r.pending = r.pending.Add(c)
		r.mu.Unlock()
		return 0, err
	}
	r.seq++
	r.out.Checkpoints++
	if pass == satellite.PassLate {
		r.out.Late = r.out.Late.Add(c)
	} else {
		r.out.Counts = r.out.Counts.Add(c)
	}
	return segmentsDone, nil
}

// count adds the segment's connections to the job's total.
func (r *segmentRun) count(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	n, err := r.w.Connections.CountAuthenticatedConnections(ctx, r.task.Segment, len(r.job.Segments), r.w.Now())
	if err == nil {
		err = r.w.Jobs.CountFanoutSegment(ctx, r.task.JobID, r.task.Segment, r.owner, r.lease, n)
	}
	if err != nil {
		// The next worker on the segment counts it.
		r.w.Log.LogAttrs(ctx, slog.LevelWarn, "fan-out segment not counted", append(r.attrs, slog.String("error", err.Error()))...)
	}
}

// release gives the segment up (best effort: the lease ends on its own).
func (r *segmentRun) release(ctx context.Context) {
	if err := r.w.Jobs.ReleaseFanoutSegment(ctx, r.task.JobID, r.task.Segment, r.owner, r.lease); err != nil {
		r.w.Log.LogAttrs(ctx, slog.LevelWarn, "fan-out segment not released; its lease ends at the deadline", append(r.attrs, slog.String("error", err.Error()))...)
	}
}
