package admin

import (
	"context"
	"net/url"
	"time"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Fan-out job states.
const (
	FanoutRunning = "running"
	FanoutDone    = "done"
	FanoutFailed  = "failed"
)

// FanoutView is a fan-out job as the API shows it: a frame pushed to every
// connected satellite, asynchronously.
type FanoutView struct {
	JobID string `json:"jobId"`
	// Kind is the frame pushed; Subject what it is about (the lockfile).
	Kind    string `json:"kind"`
	Subject string `json:"subject,omitempty"`
	// State is running, done, or failed (not every segment started: Error
	// says why; the segments that started still run to their end).
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Total is the number of connected satellites counted when the job
	// started: null until every segment is counted. Remaining is Total
	// less those processed (sent, gone or failed), 0 once done; null while
	// Total is. Satellites that connect or leave while it runs make the
	// processed count differ from Total.
	Total     *int `json:"total"`
	Sent      int  `json:"sent"`
	Gone      int  `json:"gone"`
	Failed    int  `json:"failed"`
	Remaining *int `json:"remaining"`
	// Late counts the second push to connections that authenticated around
	// the change (jobs with a late pass only).
	Late *satellite.FanoutCounts `json:"late,omitempty"`
	// Segments are parallel workers; SegmentsDone of them finished.
	Segments     int        `json:"segments"`
	SegmentsDone int        `json:"segmentsDone"`
	CreatedAt    time.Time  `json:"createdAt"`
	UpdatedAt    time.Time  `json:"updatedAt"`
	FinishedAt   *time.Time `json:"finishedAt"`
	ExpiresAt    time.Time  `json:"expiresAt"`
}

// FanoutPath is where a job's progress is read.
func FanoutPath(jobID string) string { return "/fan-outs/" + url.PathEscape(jobID) }

func (v FanoutView) location() string { return FanoutPath(v.JobID) }

func fanoutView(j satellite.FanoutJob) FanoutView {
	v := FanoutView{
		JobID: j.ID, Kind: j.Kind, Subject: j.Subject, State: FanoutRunning, Error: j.StartError,
		Sent: j.Counts.Sent, Gone: j.Counts.Gone, Failed: j.Counts.Failed,
		Segments: len(j.Segments), SegmentsDone: j.SegmentsDone,
		CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, ExpiresAt: j.ExpiresAt,
	}
	if j.HasLatePass() {
		late := j.Late
		v.Late = &late
	}
	if !j.FinishedAt.IsZero() {
		at := j.FinishedAt
		v.FinishedAt = &at
	}
	switch {
	case j.Finished():
		v.State = FanoutDone
	case j.StartError != "":
		v.State = FanoutFailed
	}
	if len(j.Segments) > 0 && j.SegmentsCounted >= len(j.Segments) {
		total := j.Total
		remaining := max(0, total-j.Counts.Processed())
		v.Total = &total
		v.Remaining = &remaining
	}
	if v.State == FanoutDone {
		zero := 0
		v.Remaining = &zero
	}
	return v
}

// FanoutJob returns a fan-out job's progress. ENOTFOUND when there is none
// (or it started more than a day ago).
func (s *Service) FanoutJob(ctx context.Context, id string) (FanoutView, error) {
	j, err := s.Fanout.Job(ctx, id)
	if err != nil {
		return FanoutView{}, err
	}
	return fanoutView(j), nil
}
