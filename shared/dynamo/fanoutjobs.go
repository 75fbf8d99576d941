package dynamo

import (
	"context"
	"regexp"
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
		return "lateSent", "lateGone", "lateFailed"
	}
	return "sent", "gone", "failed"
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
		JobsPartitionKey: str(j.ID), "kind": str(j.Kind), "subject": str(j.Subject),
		"frame": &types.AttributeValueMemberB{Value: j.Frame}, "createdAt": millis(j.CreatedAt), "updatedAt": millis(j.CreatedAt),
		JobsTTLAttribute: num(j.ExpiresAt.Unix()), jobSegmentCountAttr: num(int64(len(j.Segments))),
		jobSegmentsAttr: &types.AttributeValueMemberM{Value: segs},
	}
	if j.HasLatePass() {
		it["lateSince"], it["lateNotBefore"] = millis(j.LateSince), millis(j.LateNotBefore)
	}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: it,
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": JobsPartitionKey},
	})
	if conditionFailed(err) {
		return satellite.Errorf(satellite.ECONFLICT, "fan-out job %s exists", j.ID)
	}
	return internal(err, "create fan-out job")
}

func jobFrom(it item) satellite.FanoutJob {
	j := satellite.FanoutJob{
		ID: getStr(it, JobsPartitionKey), Kind: getStr(it, "kind"), Subject: getStr(it, "subject"),
		CreatedAt: getMillis(it, "createdAt"), UpdatedAt: getMillis(it, "updatedAt"),
		LateSince: getMillis(it, "lateSince"), LateNotBefore: getMillis(it, "lateNotBefore"),
		Total: int(getNum(it, "total")), SegmentsCounted: int(getNum(it, "segmentsCounted")), SegmentsDone: int(getNum(it, "segmentsDone")),
		Counts:     satellite.FanoutCounts{Sent: int(getNum(it, "sent")), Gone: int(getNum(it, "gone")), Failed: int(getNum(it, "failed"))},
		Late:       satellite.FanoutCounts{Sent: int(getNum(it, "lateSent")), Gone: int(getNum(it, "lateGone")), Failed: int(getNum(it, "lateFailed"))},
		StartError: getStr(it, "startError"),
	}
	if b, ok := it["frame"].(*types.AttributeValueMemberB); ok {
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

// segmentNames are the expression names of one segment's attributes.
func segmentNames(segment int) map[string]string {
	return map[string]string{
		"#seg": jobSegmentsAttr, "#s": strconv.Itoa(segment), "#pass": segPass, "#cursor": segCursor, "#done": segDone,
		"#counted": segCounted, "#owner": segOwner, "#lease": segLease, "#seq": segSeq,
	}
}

// holds is the condition that owner holds the segment under leaseUntil.
const holds = "#seg.#s.#owner = :owner AND #seg.#s.#lease = :lease"

const (
	claimUpdate    = "SET #seg.#s.#owner = :owner, #seg.#s.#lease = :lease"
	claimCondition = "#exp > :nowSeconds AND #seg.#s.#done = :false AND #seg.#s.#lease < :now"
)

// ClaimFanoutSegment implements satellite.FanoutJobs.
func (s *FanoutJobs) ClaimFanoutSegment(ctx context.Context, jobID string, segment int, owner string, leaseUntil, now time.Time) (satellite.FanoutJob, error) {
	names := segmentNames(segment)
	names["#exp"] = JobsTTLAttribute
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           &s.table,
		Key:                                 item{JobsPartitionKey: str(jobID)},
		UpdateExpression:                    aws.String(claimUpdate),
		ConditionExpression:                 aws.String(claimCondition),
		ExpressionAttributeNames:            namesUsed(names, claimUpdate, claimCondition),
		ExpressionAttributeValues:           item{":owner": str(owner), ":lease": millis(leaseUntil), ":nowSeconds": num(now.Unix()), ":false": boolean(false), ":now": millis(now)},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
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
	names := segmentNames(cp.Segment)
	sent, gone, failed := countNames(cp.Pass)
	names["#sent"], names["#gone"], names["#failed"], names["#updated"], names["#segDone"] = sent, gone, failed, "updatedAt", "segmentsDone"
	set := "SET #seg.#s.#pass = :nextPass, #seg.#s.#done = :done, #seg.#s.#seq = :nextSeq, #updated = :at"
	remove := ""
	if cp.Cursor != "" {
		set += ", #seg.#s.#cursor = :cursor"
	} else {
		remove = " REMOVE #seg.#s.#cursor"
	}
	done := int64(0)
	if cp.Done {
		done = 1
	}
	update := set + remove + " ADD #sent :sent, #gone :gone, #failed :failed, #segDone :doneIncrement"
	values := item{
		":nextPass": num(int64(cp.NextPass)), ":done": boolean(cp.Done), ":at": millis(cp.At), ":cursor": str(cp.Cursor),
		":sent": num(int64(cp.Counts.Sent)), ":gone": num(int64(cp.Counts.Gone)), ":failed": num(int64(cp.Counts.Failed)),
		":doneIncrement": num(done), ":owner": str(cp.Owner), ":lease": millis(cp.LeaseUntil),
		":seq": num(int64(cp.Seq)), ":nextSeq": num(int64(cp.Seq + 1)),
	}
	cond := holds + " AND #seg.#s.#seq = :seq"
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           &s.table,
		Key:                                 item{JobsPartitionKey: str(jobID)},
		UpdateExpression:                    aws.String(update),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            namesUsed(names, update, cond),
		ExpressionAttributeValues:           used(values, update, cond),
		ReturnValues:                        types.ReturnValueUpdatedNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
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
	return int(getNum(out.Attributes, "segmentsDone")), nil
}

// CountFanoutSegment implements satellite.FanoutJobs.
func (s *FanoutJobs) CountFanoutSegment(ctx context.Context, jobID string, segment int, owner string, leaseUntil time.Time, connections int) error {
	names := segmentNames(segment)
	names["#total"], names["#segCounted"] = "total", "segmentsCounted"
	cond := "#seg.#s.#counted = :false AND " + holds
	update := "SET #seg.#s.#counted = :true ADD #total :n, #segCounted :one"
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &s.table,
		Key:                      item{JobsPartitionKey: str(jobID)},
		UpdateExpression:         aws.String(update),
		ConditionExpression:      aws.String(cond),
		ExpressionAttributeNames: namesUsed(names, update, cond),
		ExpressionAttributeValues: item{
			":false": boolean(false), ":true": boolean(true), ":n": num(int64(connections)), ":one": num(1),
			":owner": str(owner), ":lease": millis(leaseUntil),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if old, failed := conditionFailure(err); failed {
		if j := jobFrom(old); segment < len(j.Segments) && j.Segments[segment].Counted {
			return nil // counted (by this request, if it was retried)
		}
		return satellite.Errorf(satellite.ECONFLICT, "segment %d of fan-out job %s is no longer held by this worker", segment, jobID)
	}
	return internal(err, "count fan-out segment")
}

const releaseUpdate = "SET #seg.#s.#lease = :zero REMOVE #seg.#s.#owner"

// ReleaseFanoutSegment implements satellite.FanoutJobs.
func (s *FanoutJobs) ReleaseFanoutSegment(ctx context.Context, jobID string, segment int, owner string, leaseUntil time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       item{JobsPartitionKey: str(jobID)},
		UpdateExpression:          aws.String(releaseUpdate),
		ConditionExpression:       aws.String(holds),
		ExpressionAttributeNames:  namesUsed(segmentNames(segment), releaseUpdate, holds),
		ExpressionAttributeValues: item{":zero": num(0), ":owner": str(owner), ":lease": millis(leaseUntil)},
	})
	if conditionFailed(err) {
		return nil
	}
	return internal(err, "release fan-out segment")
}

// FailFanoutJob implements satellite.FanoutJobs.
func (s *FanoutJobs) FailFanoutJob(ctx context.Context, jobID, reason string) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       item{JobsPartitionKey: str(jobID)},
		UpdateExpression:          aws.String("SET #error = :reason"),
		ConditionExpression:       aws.String("attribute_exists(#id)"),
		ExpressionAttributeNames:  map[string]string{"#id": JobsPartitionKey, "#error": "startError"},
		ExpressionAttributeValues: item{":reason": str(reason)},
	})
	if conditionFailed(err) {
		return satellite.Errorf(satellite.ENOTFOUND, "no fan-out job %s", jobID)
	}
	return internal(err, "record why a fan-out job did not start")
}

// namesUsed keeps the expression names the expressions use: DynamoDB
// refuses a request that carries one they do not.
func namesUsed(names map[string]string, expressions ...string) map[string]string {
	out := map[string]string{}
	for _, e := range expressions {
		for _, n := range namePlaceholder.FindAllString(e, -1) {
			if v, ok := names[n]; ok {
				out[n] = v
			}
		}
	}
	return out
}

var namePlaceholder = regexp.MustCompile(`#[A-Za-z0-9_]+`)
