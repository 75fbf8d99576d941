package fanout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/smithy-go/middleware"

	"github.com/checkstack/satellite-backend/infra/gateway"
	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/app"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/fanout"
	"github.com/checkstack/satellite-backend/shared/lambdainvoke"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var ctx = context.Background()

// harness runs fan-outs against DynamoDB Local, a Management API server
// and the local stack's Lambda API, which runs the fan-out function (built
// as the deployed one is) for every task handed to it.
type harness struct {
	t     *testing.T
	env   *testenv.Env
	mgmt  *testenv.ManagementAPI
	clock *testenv.Clock
	cfg   app.Config
	opts  app.Options
	jobs  *dynamo.FanoutJobs
}

func newHarness(t *testing.T, setup ...func(*harness)) *harness {
	t.Helper()
	h := &harness{t: t, env: testenv.New(t), mgmt: testenv.NewManagementAPI(t), clock: testenv.NewClock(time.Now())}
	h.cfg = h.env.Config(h.mgmt.URL)
	h.opts = app.Options{Now: h.clock.Now, Log: testenv.Logger(t), Endpoints: app.Endpoints{DynamoDB: h.env.DynamoDBEndpoint, S3: h.env.S3Endpoint}}
	for _, f := range setup {
		f(h)
	}
	// The App's fan-out function runs the tasks handed to the Lambda API.
	h.env.App(t, h.cfg, h.opts)
	h.opts.Endpoints.Lambda = h.env.Lambda.URL
	h.jobs = dynamo.NewFanoutJobs(h.env.DB, h.env.JobsTable)
	return h
}

// connect creates a satellite with a live, authenticated connection, as an
// authentication would have made it, authenticated at at.
func (h *harness) connect(satelliteID string, at time.Time) string {
	h.t.Helper()
	reg := h.env.Registry()
	sat := satellite.Satellite{ID: satelliteID, Name: satelliteID, Region: "eu-test-1", TokenHash: "hash-" + satelliteID, CreatedAt: at}
	if err := reg.CreateSatellite(ctx, sat); err != nil {
		h.t.Fatal(err)
	}
	conn := h.open(at)
	edge, err := reg.BindConnection(ctx, conn, sat, sat.TokenHash, nil, at)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := reg.ConfirmEdge(ctx, satelliteID, edge.ID); err != nil {
		h.t.Fatal(err)
	}
	return conn
}

// open records a live connection that has not authenticated.
func (h *harness) open(at time.Time) string {
	h.t.Helper()
	conn := testenv.NewConnectionID()
	h.mgmt.Open(conn)
	if err := h.env.Registry().OpenConnection(ctx, satellite.Connection{ID: conn, ConnectedAt: at, ExpiresAt: at.Add(satellite.ConnectionRecordTTL)}); err != nil {
		h.t.Fatal(err)
	}
	return conn
}

// connectMany connects n satellites concurrently.
func (h *harness) connectMany(prefix string, n int) []string {
	h.t.Helper()
	conns := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i] = h.connect(fmt.Sprintf("%s-%02d", prefix, i), h.clock.Now())
		}()
	}
	wg.Wait()
	return conns
}

// starter starts jobs as the admin function does: on the Lambda API.
func (h *harness) starter(segments int) *fanout.Starter {
	queue := &lambdainvoke.Queue{Client: lambdainvoke.New(lambda.NewFromConfig(localaws.AWSConfig(), func(o *lambda.Options) { o.BaseEndpoint = aws.String(h.env.Lambda.URL) })), Function: testenv.FanoutFunction}
	return &fanout.Starter{Jobs: h.jobs, Queue: queue, Segments: segments, Now: h.clock.Now, Log: testenv.Logger(h.t)}
}

// worker is a fan-out function of the test's own, posting one connection
// at a time; its requests are recorded with the App's fan-out function's.
func (h *harness) worker(apiOptions ...func(*middleware.Stack) error) *fanout.Worker {
	h.t.Helper()
	opts := h.opts
	opts.APIOptions = append([]func(*middleware.Stack) error{h.env.FanoutCalls.APIOption}, apiOptions...)
	w, err := app.NewFanout(h.cfg, localaws.AWSConfig(), opts)
	if err != nil {
		h.t.Fatal(err)
	}
	w.Concurrency = 1
	return w
}

// createJob stores a job without handing its segments to anybody: the test
// delivers its tasks.
func (h *harness) createJob(segments int) satellite.FanoutJob {
	h.t.Helper()
	frame, err := protocol.Encode(protocol.NewRefreshScriptPackages("lock-test"))
	if err != nil {
		h.t.Fatal(err)
	}
	now := h.clock.Now()
	job := satellite.FanoutJob{
		ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", now.UnixNano()%1e12), Kind: protocol.TypeRefreshScriptPackages, Subject: "lock-test",
		Frame: frame, CreatedAt: now, ExpiresAt: now.Add(fanout.JobRetention), Segments: make([]satellite.FanoutSegment, segments),
	}
	if err := h.jobs.CreateFanoutJob(ctx, job); err != nil {
		h.t.Fatal(err)
	}
	return job
}

func (h *harness) job(id string) satellite.FanoutJob {
	h.t.Helper()
	j, err := h.jobs.FanoutJob(ctx, id, h.clock.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func (h *harness) waitDone(id string) satellite.FanoutJob {
	h.t.Helper()
	var j satellite.FanoutJob
	testenv.Eventually(h.t, "fan-out job "+id+" finished", func() bool {
		j = h.job(id)
		return j.Finished()
	})
	return j
}

// refreshes counts the refresh_script_packages frames each connection got.
func (h *harness) refreshes(conns []string) map[string]int {
	h.t.Helper()
	got := map[string]int{}
	for _, c := range conns {
		for _, f := range h.mgmt.Frames(h.t, c) {
			if f["type"] == protocol.TypeRefreshScriptPackages {
				got[c]++
			}
		}
	}
	return got
}

// TestFanoutReachesEveryAuthenticatedConnection starts a job as the admin
// function does: each segment runs as an asynchronous invocation of the
// fan-out function. Every authenticated connection gets the frame once; a
// connection found gone is cleaned up and counted; one that never
// authenticated gets nothing.
func TestFanoutReachesEveryAuthenticatedConnection(t *testing.T) {
	h := newHarness(t)
	live := h.connectMany("sat-live", 12)
	unauthenticated := h.open(h.clock.Now())
	dead := h.connect("sat-dead", h.clock.Now())
	h.mgmt.Drop(dead)

	frame, _ := protocol.Encode(protocol.NewRefreshScriptPackages("lock-9"))
	started, err := h.starter(3).Start(ctx, fanout.Request{Kind: protocol.TypeRefreshScriptPackages, Subject: "lock-9", Frame: frame})
	if err != nil {
		t.Fatal(err)
	}
	if len(started.Segments) != 3 || started.Finished() {
		t.Fatalf("started %+v", started)
	}
	job := h.waitDone(started.ID)
	if job.Total != 13 || job.SegmentsCounted != 3 || job.Counts != (satellite.FanoutCounts{Sent: 12, Gone: 1}) || job.FinishedAt.IsZero() {
		t.Errorf("job = %+v, want 12 sent and 1 gone of 13 counted", job)
	}
	for _, c := range live {
		frames := h.mgmt.Frames(t, c)
		if len(frames) != 1 || frames[0]["type"] != "refresh_script_packages" || frames[0]["lockfileHash"] != "lock-9" {
			t.Errorf("%s got %v", c, frames)
		}
	}
	if n := len(h.mgmt.Posts(unauthenticated)); n != 0 {
		t.Errorf("the unauthenticated connection got %d frames", n)
	}
	if sat, _, _ := h.env.Registry().Satellite(ctx, "sat-dead"); sat.LastConnectionEvent != satellite.EdgeDisconnected {
		t.Errorf("the dead connection's satellite edge = %s, want disconnected", sat.LastConnectionEvent)
	}
	if st := h.env.Lambda.API.Stats(); st.Accepted != 3 || st.Failed != 0 {
		t.Errorf("Lambda API: %+v, want one task per segment, none failed", st)
	}
}

// TestAChunkStopsAtItsDeadlineAndHandsOnTheRest runs a task whose context
// leaves it time for eleven posts before its margin (the clock moves 10 s
// with every post): it posts to eleven connections, records them, and hands
// the rest of the segment on to a fresh invocation, whose successors finish
// it. Every connection gets the frame once and is counted once.
func TestAChunkStopsAtItsDeadlineAndHandsOnTheRest(t *testing.T) {
	h := newHarness(t)
	conns := h.connectMany("sat-deadline", 30)
	h.mgmt.OnPost(func(string) { h.clock.Advance(10 * time.Second) })
	job := h.createJob(1)

	deadline, cancel := context.WithDeadline(ctx, time.Now().Add(fanout.DefaultMargin+105*time.Second))
	defer cancel()
	out, err := h.worker().Run(deadline, satellite.FanoutTask{JobID: job.ID, Segment: 0})
	if err != nil {
		t.Fatal(err)
	}
	if !out.Claimed || out.Counts.Sent != 11 || !out.HandedOn || out.SegmentDone {
		t.Fatalf("first task: %+v, want 11 posts and the rest handed on", out)
	}
	// Its progress is recorded; the rest runs in the invocations it handed
	// the segment to.
	done := h.waitDone(job.ID)
	if done.Counts != (satellite.FanoutCounts{Sent: 30}) || done.Total != 30 {
		t.Errorf("job = %+v, want 30 sent of 30", done)
	}
	for c, n := range h.refreshes(conns) {
		if n != 1 {
			t.Errorf("%s got %d refreshes, want 1", c, n)
		}
	}
	if len(h.refreshes(conns)) != 30 {
		t.Errorf("%d connections got the refresh, want 30", len(h.refreshes(conns)))
	}
	if st := h.env.Lambda.API.Stats(); st.Accepted < 2 {
		t.Errorf("Lambda API: %+v, want the segment handed on at least twice", st)
	}
}

// TestATaskDeliveredTwiceCountsProgressOnce delivers every task twice, at
// once and after the job finished, and loses the answers of a claim and a
// checkpoint (the SDK retries them): each connection is counted once.
func TestATaskDeliveredTwiceCountsProgressOnce(t *testing.T) {
	h := newHarness(t)
	conns := h.connectMany("sat-twice", 20)
	job := h.createJob(2)
	lostClaim := &testenv.Fault{LoseResponse: true, Match: func(op string, in any) bool {
		u, ok := in.(*dynamodb.UpdateItemInput)
		return ok && op == "UpdateItem" && strings.Contains(*u.UpdateExpression, "#seg.#s.#owner = :owner")
	}}
	lostCheckpoint := &testenv.Fault{LoseResponse: true, Match: func(op string, in any) bool {
		u, ok := in.(*dynamodb.UpdateItemInput)
		return ok && op == "UpdateItem" && strings.Contains(*u.UpdateExpression, "#seq = :nextSeq")
	}}
	w := h.worker(append(lostClaim.APIOptions(), lostCheckpoint.APIOptions()...)...)
	w.Concurrency = 4

	var wg sync.WaitGroup
	outcomes := make([]fanout.Outcome, 4)
	for i := range outcomes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if outcomes[i], err = w.Run(ctx, satellite.FanoutTask{JobID: job.ID, Segment: i % 2}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if lostClaim.Fired() != 1 || lostCheckpoint.Fired() != 1 {
		t.Fatalf("faults fired %d and %d times, want once each", lostClaim.Fired(), lostCheckpoint.Fired())
	}
	var counted satellite.FanoutCounts
	for _, o := range outcomes {
		counted = counted.Add(o.Counts)
	}
	j := h.job(job.ID)
	if !j.Finished() || j.Counts != (satellite.FanoutCounts{Sent: 20}) || counted != j.Counts || j.Total != 20 {
		t.Errorf("job = %+v after deliveries %+v, want 20 sent, each counted once", j, outcomes)
	}
	// A delivery after the job finished finds nothing to do.
	for seg := range 2 {
		if out, err := w.Run(ctx, satellite.FanoutTask{JobID: job.ID, Segment: seg}); err != nil || out.Claimed {
			t.Errorf("late delivery of segment %d: %+v, %v; want nothing done", seg, out, err)
		}
	}
	if again := h.job(job.ID); again.Counts != j.Counts || again.UpdatedAt != j.UpdatedAt {
		t.Errorf("job changed by a late delivery: %+v", again)
	}
	if n := len(h.refreshes(conns)); n != 20 {
		t.Errorf("%d connections got the refresh, want 20", n)
	}
	// Tasks of unknown jobs and segments are dropped, not retried.
	for _, task := range []satellite.FanoutTask{{JobID: "00000000-0000-4000-8000-000000000000", Segment: 0}, {JobID: job.ID, Segment: 7}, {JobID: job.ID, Segment: -1}} {
		if out, err := w.Run(ctx, task); err != nil || out.Claimed {
			t.Errorf("task %+v: %+v, %v; want nothing done", task, out, err)
		}
	}
}

// TestHandOnsDeliveredTwice runs a job whose segments are handed on many
// times through the Lambda API delivering every event twice: the chain
// finishes with every connection counted once.
func TestHandOnsDeliveredTwice(t *testing.T) {
	h := newHarness(t, func(h *harness) { h.env.AsyncDuplicateRate = 1 })
	conns := h.connectMany("sat-dup", 24)
	h.mgmt.OnPost(func(string) { h.clock.Advance(10 * time.Second) })
	frame, _ := protocol.Encode(protocol.NewRefreshScriptPackages("lock-dup"))
	started, err := h.starter(2).Start(ctx, fanout.Request{Kind: protocol.TypeRefreshScriptPackages, Frame: frame})
	if err != nil {
		t.Fatal(err)
	}
	job := h.waitDone(started.ID)
	if job.Counts != (satellite.FanoutCounts{Sent: 24}) || job.Total != 24 {
		t.Errorf("job = %+v, want 24 sent of 24", job)
	}
	if n := len(h.refreshes(conns)); n != 24 {
		t.Errorf("%d connections got the refresh, want 24", n)
	}
	st := h.env.Lambda.API.Stats()
	if st.Duplicated < 3 || st.Duplicated != st.Accepted {
		t.Errorf("Lambda API: %+v, want every event (the starts and the hand-ons) delivered twice", st)
	}
}

// TestTaskFixture invokes the fan-out function's handler with
// events/fanout-task.json, the event the admin function (and the function
// itself) sends, through the Lambda handler adapter (usable with sam local
// invoke -e).
func TestTaskFixture(t *testing.T) {
	h := newHarness(t)
	conns := h.connectMany("sat-fixture", 3)
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "events", "fanout-task.json"))
	if err != nil {
		t.Fatal(err)
	}
	var task satellite.FanoutTask
	if err := json.Unmarshal(b, &task); err != nil {
		t.Fatal(err)
	}
	frame, _ := protocol.Encode(protocol.NewRefreshScriptPackages("lock-fixture"))
	now := h.clock.Now()
	if err := h.jobs.CreateFanoutJob(ctx, satellite.FanoutJob{ID: task.JobID, Kind: protocol.TypeRefreshScriptPackages, Frame: frame,
		CreatedAt: now, ExpiresAt: now.Add(fanout.JobRetention), Segments: make([]satellite.FanoutSegment, 1)}); err != nil {
		t.Fatal(err)
	}
	invoke := gateway.NewInProcess(map[string]any{"FanoutFunction": h.worker().Handle})
	deadline, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := invoke.Invoke(deadline, "FanoutFunction", b); err != nil || string(out) != "null" {
		t.Fatalf("invoke with the fixture: %s, %v", out, err)
	}
	if j := h.job(task.JobID); !j.Finished() || j.Counts.Sent != 3 {
		t.Errorf("job = %+v, want 3 sent", j)
	}
	if n := len(h.refreshes(conns)); n != 3 {
		t.Errorf("%d connections refreshed, want 3", n)
	}
}

// TestLatePass pushes again, once the late pass may start, to the
// connections that authenticated at or after LateSince only.
func TestLatePass(t *testing.T) {
	h := newHarness(t)
	early := h.connect("sat-early", h.clock.Now().Add(-time.Minute))
	late := h.connect("sat-late", h.clock.Now())
	frame, _ := protocol.Encode(protocol.NewSandboxPolicy([]byte(`{"egress":"deny"}`)))
	started, err := h.starter(2).Start(ctx, fanout.Request{
		Kind: protocol.TypeSandboxPolicy, Frame: frame,
		LateSince: h.clock.Now().Add(-10 * time.Second), LateNotBefore: h.clock.Now().Add(time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	job := h.waitDone(started.ID)
	if job.Counts.Sent != 2 || job.Late != (satellite.FanoutCounts{Sent: 1}) {
		t.Errorf("job = %+v, want 2 sent and 1 sent again", job)
	}
	if n := len(h.mgmt.Posts(early)); n != 1 {
		t.Errorf("the early connection got %d pushes, want 1", n)
	}
	if n := len(h.mgmt.Posts(late)); n != 2 {
		t.Errorf("the late connection got %d pushes, want 2", n)
	}
}

// TestFanoutPolicyGrantsExactlyWhatItCalls checks FanoutFunction's IAM
// policy against the requests it made: claims, checkpoints, counts and
// releases, the scans, posts, a gone connection's cleanup with its
// lifecycle event, and a hand-on to itself.
func TestFanoutPolicyGrantsExactlyWhatItCalls(t *testing.T) {
	eb := testenv.NewEventBridge(t)
	h := newHarness(t, func(h *harness) {
		h.cfg.EventBusName = "default"
		h.opts.Endpoints.EventBridge = eb.URL
	})
	conns := h.connectMany("sat-policy", 14)
	h.mgmt.Drop(conns[0])
	h.mgmt.OnPost(func(string) { h.clock.Advance(10 * time.Second) })
	job := h.createJob(1)
	deadline, cancel := context.WithDeadline(ctx, time.Now().Add(fanout.DefaultMargin+55*time.Second))
	defer cancel()
	if out, err := h.worker().Run(deadline, satellite.FanoutTask{JobID: job.ID, Segment: 0}); err != nil || !out.HandedOn {
		t.Fatalf("first task: %+v, %v; want it handed on", out, err)
	}
	if done := h.waitDone(job.ID); done.Counts != (satellite.FanoutCounts{Sent: 13, Gone: 1}) {
		t.Errorf("job = %+v", done)
	}
	if len(eb.Requests()) == 0 {
		t.Fatal("the gone connection's disconnected edge was not published")
	}
	testenv.CheckPolicy(t, testenv.Template(t), "FanoutFunction", h.env.FanoutCalls, h.env.TableNames, "")
}

// TestASupersededJobPushesNothingMore delivers a refresh job's task after
// another lockfile was published (as a Lambda retry or a late hand-on
// would): the task pushes nothing and marks its segment done, so no
// satellite gets the older lockfile after the newer one.
func TestASupersededJobPushesNothingMore(t *testing.T) {
	h := newHarness(t)
	conns := h.connectMany("sat-old", 3)
	job := h.createJob(1) // pushes lock-test
	if err := h.env.Registry().SetDesiredLockfileHash(ctx, "lock-newer"); err != nil {
		t.Fatal(err)
	}
	out, err := h.worker().Run(ctx, satellite.FanoutTask{JobID: job.ID, Segment: 0})
	if err != nil || !out.SegmentDone || out.Counts.Sent != 0 {
		t.Fatalf("superseded task: %+v, %v; want its segment done and nothing sent", out, err)
	}
	for _, c := range conns {
		if n := len(h.mgmt.Posts(c)); n != 0 {
			t.Errorf("%s got %d frames from a superseded job", c, n)
		}
	}
	// The same job while still current pushes.
	if err := h.env.Registry().SetDesiredLockfileHash(ctx, "lock-test"); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Second) // a job's id here follows the clock
	current := h.createJob(1)
	if out, err := h.worker().Run(ctx, satellite.FanoutTask{JobID: current.ID, Segment: 0}); err != nil || out.Counts.Sent != 3 {
		t.Fatalf("current task: %+v, %v; want 3 sent", out, err)
	}
}

func TestSupersededReadsTheKindsSubject(t *testing.T) {
	at := time.Date(2026, 11, 27, 8, 0, 0, 123456789, time.UTC)
	lock := "lock-2"
	policy := satellite.FanoutJob{Kind: protocol.TypeSandboxPolicy, Subject: fanout.PolicySubjectPrefix + at.Format(time.RFC3339Nano)}
	for _, c := range []struct {
		st   satellite.Settings
		job  satellite.FanoutJob
		want bool
	}{
		{satellite.Settings{LockfileHash: &lock}, satellite.FanoutJob{Kind: protocol.TypeRefreshScriptPackages, Subject: "lock-1"}, true},
		{satellite.Settings{LockfileHash: &lock}, satellite.FanoutJob{Kind: protocol.TypeRefreshScriptPackages, Subject: "lock-2"}, false},
		// The stored update time has milliseconds; the subject nanoseconds.
		{satellite.Settings{SandboxPolicyUpdatedAt: at.Truncate(time.Millisecond)}, policy, false},
		{satellite.Settings{SandboxPolicyUpdatedAt: at.Add(time.Millisecond)}, policy, true},
	} {
		if got := fanout.Superseded(c.st, c.job); got != c.want {
			t.Errorf("Superseded(%+v, %s %s) = %v, want %v", c.st, c.job.Kind, c.job.Subject, got, c.want)
		}
	}
}
