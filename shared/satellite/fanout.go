package satellite

import (
	"context"
	"time"
)

// A fan-out job pushes one frame to every authenticated connection,
// asynchronously and in chunks: the connections are split into segments (a
// parallel scan), each segment is worked through by one worker at a time,
// and a worker checkpoints its progress (a cursor and the counts it reached)
// as it goes, so another worker can take the segment over where it stopped.

// FanoutCounts are the outcomes of posts to connections.
type FanoutCounts struct {
	Sent   int `json:"sent"`
	Gone   int `json:"gone"`
	Failed int `json:"failed"`
}

// Processed is how many connections the counts cover.
func (c FanoutCounts) Processed() int { return c.Sent + c.Gone + c.Failed }

// Add returns the sum of two counts.
func (c FanoutCounts) Add(o FanoutCounts) FanoutCounts {
	return FanoutCounts{Sent: c.Sent + o.Sent, Gone: c.Gone + o.Gone, Failed: c.Failed + o.Failed}
}

// Fan-out passes: every job runs PassAll over the connections; a job with a
// late pass (LateSince set) then runs PassLate, to the connections that
// authenticated at or after LateSince, once LateNotBefore has passed.
const (
	PassAll  = 0
	PassLate = 1
)

// FanoutSegment is where one segment of a job stands.
type FanoutSegment struct {
	Index int
	// Pass is the pass the segment is in; Cursor is where it continues
	// ("" from the start of the pass).
	Pass   int
	Cursor string
	Done   bool
	// Counted says whether the segment's connections were added to the
	// job's Total.
	Counted bool
	// Owner holds the segment until LeaseUntil; nobody when LeaseUntil is
	// zero or past.
	Owner      string
	LeaseUntil time.Time
	// Checkpoints counts the checkpoints recorded: each names the count it
	// follows, so a retried write recognises that it already landed.
	Checkpoints int
}

// FanoutJob is a fan-out job as stored.
type FanoutJob struct {
	ID string
	// Kind is the type of the frame pushed (refresh_script_packages,
	// sandbox_policy); Subject what it is about (the lockfile hash), for
	// the operator.
	Kind    string
	Subject string
	// Frame is the encoded frame.
	Frame     []byte
	CreatedAt time.Time
	// UpdatedAt is the last checkpoint's time; FinishedAt is set once every
	// segment is done (the last segment's last checkpoint).
	UpdatedAt  time.Time
	FinishedAt time.Time
	ExpiresAt  time.Time
	// LateSince and LateNotBefore describe the late pass; zero when the job
	// has none.
	LateSince     time.Time
	LateNotBefore time.Time
	// Total is the number of authenticated connections counted in the
	// segments counted so far (SegmentsCounted of them).
	Total           int
	SegmentsCounted int
	SegmentsDone    int
	// Counts are PassAll's outcomes, Late PassLate's.
	Counts FanoutCounts
	Late   FanoutCounts
	// StartError says why the job could not be started (not every segment
	// was handed to a worker); empty when it was.
	StartError string
	Segments   []FanoutSegment
}

// HasLatePass reports whether the job runs PassLate.
func (j FanoutJob) HasLatePass() bool { return !j.LateSince.IsZero() }

// Finished reports whether every segment is done.
func (j FanoutJob) Finished() bool { return len(j.Segments) > 0 && j.SegmentsDone >= len(j.Segments) }

// FanoutCheckpoint is what a segment's worker records: the counts of the
// connections it processed since its last checkpoint, in Pass, and where the
// segment continues. Done ends the segment; Pass moving on starts the next
// pass from its beginning.
type FanoutCheckpoint struct {
	Segment    int
	Owner      string
	LeaseUntil time.Time
	// Seq is the segment's Checkpoints before this one.
	Seq int
	// Pass is the pass Counts were made in.
	Pass   int
	Counts FanoutCounts
	// NextPass and Cursor are where the segment continues; Done when it
	// has nothing left.
	NextPass int
	Cursor   string
	Done     bool
	At       time.Time
}

// FanoutTask asks a worker to work on one segment of a job. It is delivered
// at least once: a worker that finds the segment held by another, or done,
// does nothing.
type FanoutTask struct {
	JobID   string `json:"jobId"`
	Segment int    `json:"segment"`
}

// FanoutJobs stores fan-out jobs (an item per job, expiring).
type FanoutJobs interface {
	// CreateFanoutJob stores a new job with its segments, none held.
	// ECONFLICT when the id is taken.
	CreateFanoutJob(ctx context.Context, j FanoutJob) error
	// FanoutJob returns a job. ENOTFOUND when there is none or it expired.
	FanoutJob(ctx context.Context, jobID string, now time.Time) (FanoutJob, error)
	// ClaimFanoutSegment makes owner the holder of a segment until
	// leaseUntil if nobody holds it at now, and returns the job as stored
	// after the claim (also when a retry meets the claim's own effect).
	// ECONFLICT when it is held or done; ENOTFOUND when the job does not
	// exist, expired or has no such segment.
	ClaimFanoutSegment(ctx context.Context, jobID string, segment int, owner string, leaseUntil, now time.Time) (FanoutJob, error)
	// CheckpointFanoutSegment records a checkpoint of the segment's holder
	// and adds its counts to the job, in one conditional write, exactly once
	// (a retry of a write whose answer was lost recognises it by Seq), and
	// returns how many segments are done after it. ECONFLICT when owner no
	// longer holds the segment under that lease: nothing is recorded.
	CheckpointFanoutSegment(ctx context.Context, jobID string, cp FanoutCheckpoint) (segmentsDone int, err error)
	// CountFanoutSegment adds the connections counted in a segment to the
	// job's total, once per segment, while owner holds it: counting a
	// counted segment changes nothing. ECONFLICT when owner lost it.
	CountFanoutSegment(ctx context.Context, jobID string, segment int, owner string, leaseUntil time.Time, connections int) error
	// ReleaseFanoutSegment gives the segment up, so the next worker can
	// claim it at once. Releasing a segment owner no longer holds changes
	// nothing.
	ReleaseFanoutSegment(ctx context.Context, jobID string, segment int, owner string, leaseUntil time.Time) error
	// FailFanoutJob records why the job could not be started.
	FailFanoutJob(ctx context.Context, jobID, reason string) error
}

// FanoutQueue hands tasks to fan-out workers asynchronously. A task is
// delivered at least once (possibly more than once), and may be retried
// after a worker failed it.
type FanoutQueue interface {
	EnqueueFanout(ctx context.Context, t FanoutTask) error
}

// ConnectionPage is one page of a segment of the authenticated connections.
type ConnectionPage struct {
	// Connections are the live ones; Cursors[i] is where a scan continues
	// after Connections[i].
	Connections []Connection
	Cursors     []string
	// Next is where the scan continues after the page (it may have read
	// expired records past the last live one); "" when the segment has
	// nothing more.
	Next string
}

// ConnectionScan lists the authenticated connections in segments (a
// parallel scan), resumably.
type ConnectionScan interface {
	// ScanAuthenticatedConnections reads up to limit records of segment
	// (of segments) after cursor ("" from the start) and returns the live
	// ones among them.
	ScanAuthenticatedConnections(ctx context.Context, segment, segments int, cursor string, limit int, now time.Time) (ConnectionPage, error)
	// CountAuthenticatedConnections counts the live records of a segment.
	CountAuthenticatedConnections(ctx context.Context, segment, segments int, now time.Time) (int, error)
}
