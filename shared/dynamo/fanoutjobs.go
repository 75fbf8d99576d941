package dynamo

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Jobs table: one item per fan-out job, expiring (TTL).
const (
	JobsPartitionKey = "jobId"
	JobsTTLAttribute = "expiresAt"
)

// Attributes of a job item. The segments live in one map attribute,
// segment index -> {pass, cursor, done, counted, owner, leaseUntil}, so a
// checkpoint moves a segment and adds its counts to the job in one
// conditional write.
const (
	jobSegmentsAttr     = "seg"
	jobSegmentCountAttr = "segments"
	segPass             = "pass"
	segCursor           = "cursor"
	segDone             = "done"
	segCounted          = "counted"
	segOwner            = "owner"
	segLease            = "leaseUntil"
	segSeq              = "checkpoints"

	// What a job is (besides kindAttr, createdAtAttr and updatedAtAttr):
	// the subject and the frame it sends, and its late pass's window.
	jobSubjectAttr       = "subject"
	jobFrameAttr         = "frame"
	jobLateSinceAttr     = "lateSince"
	jobLateNotBeforeAttr = "lateNotBefore"
	jobStartErrorAttr    = "startError"
	// Its progress: connections counted, segments counted and done, and
	// each pass's counts (sent, gone, failed).
	jobTotalAttr           = "total"
	jobSegmentsCountedAttr = "segmentsCounted"
	jobSegmentsDoneAttr    = "segmentsDone"
	jobSentAttr            = "sent"
	jobGoneAttr            = "gone"
	jobFailedAttr          = "failed"
	jobLateSentAttr        = "lateSent"
	jobLateGoneAttr        = "lateGone"
	jobLateFailedAttr      = "lateFailed"
)

// FanoutJobs implements satellite.FanoutJobs on the jobs table.
type FanoutJobs struct {
	db    API
	table string
}

var _ satellite.FanoutJobs = (*FanoutJobs)(nil)

// NewFanoutJobs returns the store over the jobs table.
func NewFanoutJobs(db API, table string) *FanoutJobs { return &FanoutJobs{db: db, table: table} }

func boolean(v bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: v} }

func getBool(it item, name string) bool {
	v, ok := it[name].(*types.AttributeValueMemberBOOL)
	return ok && v.Value
}

// countNames are the attributes a pass's counts are added to.
func countNames(pass int) (sent, gone, failed string) {
	if pass == satellite.PassLate {
		return jobLateSentAttr, jobLateGoneAttr, jobLateFailedAttr
	}
	return jobSentAttr, jobGoneAttr, jobFailedAttr
}

// CreateFanoutJob implements satellite.FanoutJobs.
func (s *FanoutJobs) CreateFanoutJob(ctx context.Context, j satellite.FanoutJob) error {
	// Every segment starts alike: from the start of PassAll, not done,
	// not counted, held by nobody (leaseUntil 0), no checkpoint.
	start := &types.AttributeValueMemberM{Value: item{
		segPass: num(satellite.PassAll), segDone: boolean(false), segCounted: boolean(false), segLease: num(0), segSeq: num(0),
	}}
	segs := item{}
	for i := range j.Segments {
		segs[strconv.Itoa(i)] = start
	}
	// The counters start missing (zero): checkpoints ADD to them.
	it := item{
		JobsPartitionKey: str(j.ID), kindAttr: str(j.Kind), jobSubjectAttr: str(j.Subject),
		jobFrameAttr: &types.AttributeValueMemberB{Value: j.Frame}, createdAtAttr: millis(j.CreatedAt), updatedAtAttr: millis(j.CreatedAt),
		JobsTTLAttribute: num(j.ExpiresAt.Unix()), jobSegmentCountAttr: num(int64(len(j.Segments))),
		jobSegmentsAttr: &types.AttributeValueMemberM{Value: segs},
	}
	if j.HasLatePass() {
		it[jobLateSinceAttr], it[jobLateNotBeforeAttr] = millis(j.LateSince), millis(j.LateNotBefore)
	}
	_, err := s.db.PutItem(ctx, whereNew(JobsPartitionKey).putItem(s.table, it))
	if conditionFailed(err) {
		return satellite.Errorf(satellite.ECONFLICT, "fan-out job %s exists", j.ID)
	}
	return internal(err, "create fan-out job")
}

func jobFrom(it item) satellite.FanoutJob {
	j := satellite.FanoutJob{
		ID: getStr(it, JobsPartitionKey), Kind: getStr(it, kindAttr), Subject: getStr(it, jobSubjectAttr),
		CreatedAt: getMillis(it, createdAtAttr), UpdatedAt: getMillis(it, updatedAtAttr),
		LateSince: getMillis(it, jobLateSinceAttr), LateNotBefore: getMillis(it, jobLateNotBeforeAttr),
		Total: int(getNum(it, jobTotalAttr)), SegmentsCounted: int(getNum(it, jobSegmentsCountedAttr)), SegmentsDone: int(getNum(it, jobSegmentsDoneAttr)),
		Counts:     satellite.FanoutCounts{Sent: int(getNum(it, jobSentAttr)), Gone: int(getNum(it, jobGoneAttr)), Failed: int(getNum(it, jobFailedAttr))},
		Late:       satellite.FanoutCounts{Sent: int(getNum(it, jobLateSentAttr)), Gone: int(getNum(it, jobLateGoneAttr)), Failed: int(getNum(it, jobLateFailedAttr))},
		StartError: getStr(it, jobStartErrorAttr),
	}
	if b, ok := it[jobFrameAttr].(*types.AttributeValueMemberB); ok {
		j.Frame = b.Value
	}
	if exp := getNum(it, JobsTTLAttribute); exp != 0 {
		j.ExpiresAt = time.Unix(exp, 0).UTC()
	}
	n := int(getNum(it, jobSegmentCountAttr))
	if j.SegmentsDone >= n && n > 0 {
		// The last checkpoint was the last segment's last.
		j.FinishedAt = j.UpdatedAt
	}
	segs, _ := it[jobSegmentsAttr].(*types.AttributeValueMemberM)
	for i := 0; i < n; i++ {
		st := satellite.FanoutSegment{Index: i}
		if segs != nil {
			if m, ok := segs.Value[strconv.Itoa(i)].(*types.AttributeValueMemberM); ok {
				st.Pass, st.Cursor = int(getNum(m.Value, segPass)), getStr(m.Value, segCursor)
				st.Done, st.Counted = getBool(m.Value, segDone), getBool(m.Value, segCounted)
				st.Owner, st.LeaseUntil = getStr(m.Value, segOwner), getMillis(m.Value, segLease)
				st.Checkpoints = int(getNum(m.Value, segSeq))
			}
		}
		j.Segments = append(j.Segments, st)
	}
	return j
}

// FanoutJob implements satellite.FanoutJobs.
func (s *FanoutJobs) FanoutJob(ctx context.Context, jobID string, now time.Time) (satellite.FanoutJob, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &s.table, Key: item{JobsPartitionKey: str(jobID)}, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return satellite.FanoutJob{}, internal(err, "read fan-out job")
	}
	if out.Item == nil {
		return satellite.FanoutJob{}, satellite.Errorf(satellite.ENOTFOUND, "no fan-out job %s", jobID)
	}
	j := jobFrom(out.Item)
	if !now.Before(j.ExpiresAt) {
		return satellite.FanoutJob{}, satellite.Errorf(satellite.ENOTFOUND, "fan-out job %s has expired", jobID)
	}
	return j, nil
}

// segmentAliases are the placeholders of a segment's fields: short ones,
// so a checkpoint's expression reads "#seg.#s.#seq = :seq".
var segmentAliases = map[string]string{
	segPass: "pass", segCursor: "cursor", segDone: "done", segCounted: "counted", segOwner: "owner", segLease: "lease", segSeq: "seq",
}

// segmentField is the path of field of a job's segment in e: seg.<n>.field.
func segmentField(e *expr, segment int, field string) path {
	return e.attr(jobSegmentsAttr).dot(e.alias("s", strconv.Itoa(segment))).dot(e.alias(segmentAliases[field], field))
}

// holds is the condition that owner holds the segment under leaseUntil.
func holds(e *expr, segment int, owner string, leaseUntil time.Time) condition {
	return and(
		eq(segmentField(e, segment, segOwner), e.val("owner", str(owner))),
		eq(segmentField(e, segment, segLease), e.val("lease", millis(leaseUntil))),
	)
}

// ClaimFanoutSegment implements satellite.FanoutJobs.
func (s *FanoutJobs) ClaimFanoutSegment(ctx context.Context, jobID string, segment int, owner string, leaseUntil, now time.Time) (satellite.FanoutJob, error) {
	// The segment, if it is not done and its lease (if any) ran out, in a
	// job that has not expired.
	e := newExpr()
	e.setTo(segmentField(e, segment, segOwner), e.val("owner", str(owner)))
	e.setTo(segmentField(e, segment, segLease), e.val("lease", millis(leaseUntil)))
	e.when(and(
		gt(e.attr(JobsTTLAttribute), e.val("nowSeconds", num(now.Unix()))),
		eq(segmentField(e, segment, segDone), e.val("false", boolean(false))),
		lt(segmentField(e, segment, segLease), e.val("now", millis(now))),
	))
	in := e.updateItem(s.table, item{JobsPartitionKey: str(jobID)})
	in.ReturnValues = types.ReturnValueAllNew
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	out, err := s.db.UpdateItem(ctx, in)
	if old, failed := conditionFailure(err); failed {
		if len(old) == 0 {
			return satellite.FanoutJob{}, satellite.Errorf(satellite.ENOTFOUND, "no fan-out job %s", jobID)
		}
		j := jobFrom(old)
		switch {
		case segment >= 0 && segment < len(j.Segments) && j.Segments[segment].Owner == owner && j.Segments[segment].LeaseUntil.Equal(leaseUntil.Truncate(time.Millisecond)):
			// A retry meeting its own claim.
			return j, nil
		case !now.Before(j.ExpiresAt):
			return satellite.FanoutJob{}, satellite.Errorf(satellite.ENOTFOUND, "fan-out job %s has expired", jobID)
		case segment < 0 || segment >= len(j.Segments):
			return satellite.FanoutJob{}, satellite.Errorf(satellite.ENOTFOUND, "fan-out job %s has no segment %d", jobID, segment)
		case j.Segments[segment].Done:
			return satellite.FanoutJob{}, satellite.Errorf(satellite.ECONFLICT, "segment %d of fan-out job %s is done", segment, jobID)
		}
		return satellite.FanoutJob{}, satellite.Errorf(satellite.ECONFLICT, "segment %d of fan-out job %s is held until %s", segment, jobID, j.Segments[segment].LeaseUntil.Format(time.RFC3339Nano))
	}
	if err != nil {
		return satellite.FanoutJob{}, internal(err, "claim fan-out segment")
	}
	return jobFrom(out.Attributes), nil
}

// CheckpointFanoutSegment implements satellite.FanoutJobs.
func (s *FanoutJobs) CheckpointFanoutSegment(ctx context.Context, jobID string, cp satellite.FanoutCheckpoint) (int, error) {
	// The segment moved on, and its counts added to the pass's, if this
	// worker still holds it and this is its next checkpoint.
	e := newExpr()
	field := func(name string) path { return segmentField(e, cp.Segment, name) }
	e.setTo(field(segPass), e.val("nextPass", num(int64(cp.NextPass))))
	e.setTo(field(segDone), e.val("done", boolean(cp.Done)))
	e.setTo(field(segSeq), e.val("nextSeq", num(int64(cp.Seq+1))))
	e.setTo(e.attr(updatedAtAttr), e.val("at", millis(cp.At)))
	if cp.Cursor != "" {
		e.setTo(field(segCursor), e.val("cursor", str(cp.Cursor)))
	} else {
		e.removes(field(segCursor))
	}
	done := int64(0)
	if cp.Done {
		done = 1
	}
	sent, gone, failed := countNames(cp.Pass)
	e.adds(e.attr(sent), e.val("sent", num(int64(cp.Counts.Sent))))
	e.adds(e.attr(gone), e.val("gone", num(int64(cp.Counts.Gone))))
	e.adds(e.attr(failed), e.val("failed", num(int64(cp.Counts.Failed))))
	e.adds(e.attr(jobSegmentsDoneAttr), e.val("doneIncrement", num(done)))
	e.when(and(holds(e, cp.Segment, cp.Owner, cp.LeaseUntil), eq(field(segSeq), e.val("seq", num(int64(cp.Seq))))))
	in := e.updateItem(s.table, item{JobsPartitionKey: str(jobID)})
	in.ReturnValues = types.ReturnValueUpdatedNew
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	out, err := s.db.UpdateItem(ctx, in)
	if old, failed := conditionFailure(err); failed {
		j := jobFrom(old)
		if cp.Segment < len(j.Segments) {
			if st := j.Segments[cp.Segment]; st.Owner == cp.Owner && st.LeaseUntil.Equal(cp.LeaseUntil.Truncate(time.Millisecond)) && st.Checkpoints == cp.Seq+1 {
				// A retry meeting its own checkpoint: it was recorded once.
				return j.SegmentsDone, nil
			}
		}
		return 0, satellite.Errorf(satellite.ECONFLICT, "segment %d of fan-out job %s is no longer held by this worker", cp.Segment, jobID)
	}
	if err != nil {
		return 0, internal(err, "checkpoint fan-out segment")
	}
	return int(getNum(out.Attributes, jobSegmentsDoneAttr)), nil
}

// CountFanoutSegment implements satellite.FanoutJobs.
func (s *FanoutJobs) CountFanoutSegment(ctx context.Context, jobID string, segment int, owner string, leaseUntil time.Time, connections int) error {
	// The segment's connections added to the job's total, once: if it is
	// not counted yet and this worker holds it.
	e := newExpr()
	counted := segmentField(e, segment, segCounted)
	e.setTo(counted, e.val("true", boolean(true)))
	e.adds(e.attr(jobTotalAttr), e.val("n", num(int64(connections))))
	e.adds(e.attr(jobSegmentsCountedAttr), e.val("one", num(1)))
	e.when(and(eq(counted, e.val("false", boolean(false))), holds(e, segment, owner, leaseUntil)))
	in := e.updateItem(s.table, item{JobsPartitionKey: str(jobID)})
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	_, err := s.db.UpdateItem(ctx, in)
	if old, failed := conditionFailure(err); failed {
		if j := jobFrom(old); segment < len(j.Segments) && j.Segments[segment].Counted {
			return nil // counted (by this request, if it was retried)
		}
		return satellite.Errorf(satellite.ECONFLICT, "segment %d of fan-out job %s is no longer held by this worker", segment, jobID)
	}
	return internal(err, "count fan-out segment")
}

// ReleaseFanoutSegment implements satellite.FanoutJobs.
func (s *FanoutJobs) ReleaseFanoutSegment(ctx context.Context, jobID string, segment int, owner string, leaseUntil time.Time) error {
	e := newExpr()
	e.setTo(segmentField(e, segment, segLease), e.val("zero", num(0)))
	e.removes(segmentField(e, segment, segOwner))
	e.when(holds(e, segment, owner, leaseUntil))
	_, err := s.db.UpdateItem(ctx, e.updateItem(s.table, item{JobsPartitionKey: str(jobID)}))
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "release fan-out segment")
}

// FailFanoutJob implements satellite.FanoutJobs.
func (s *FanoutJobs) FailFanoutJob(ctx context.Context, jobID, reason string) error {
	e := whereExists(JobsPartitionKey)
	e.setTo(e.attr(jobStartErrorAttr), e.val("reason", str(reason)))
	_, err := s.db.UpdateItem(ctx, e.updateItem(s.table, item{JobsPartitionKey: str(jobID)}))
	if conditionFailed(err) {
		return satellite.Errorf(satellite.ENOTFOUND, "no fan-out job %s", jobID)
	}
	return internal(err, "record why a fan-out job did not start")
}
