package localstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/resultsfeed"
)

// The results feed, consumed as the core consumes it: with the AWS SDK's
// SQS client, from the queue the stack outputs.

const feedCheck = `{"configId":"cfg-feed","systemId":"sys-feed","strategyId":"http","config":{},"intervalSeconds":30,
 "environments":[{"id":"env-prod","name":"Production"}]}`

// feedConsumer reads the results feed.
type feedConsumer struct {
	t   *testing.T
	sqs *sqs.Client
	url string
}

func newFeedConsumer(t *testing.T, s *localstack.Stack) *feedConsumer {
	t.Helper()
	if s.ResultsFeedQueueURL == "" {
		t.Fatal("the local stack has no results feed queue")
	}
	return &feedConsumer{t: t, sqs: localaws.SQSClient(s.SQSEndpoint), url: s.ResultsFeedQueueURL}
}

// receive long-polls once, hiding what it gets for visibility.
func (c *feedConsumer) receive(queueURL string, visibility int32) []sqstypes.Message {
	c.t.Helper()
	out, err := c.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: visibility,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
	})
	if err != nil {
		c.t.Fatalf("receive: %v", err)
	}
	return out.Messages
}

func decodeFeed(t *testing.T, m sqstypes.Message) resultsfeed.Message {
	t.Helper()
	var doc resultsfeed.Message
	if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &doc); err != nil {
		t.Fatalf("feed message is not the documented JSON: %v", err)
	}
	if doc.Version != resultsfeed.Version || doc.Type != resultsfeed.MessageType {
		t.Fatalf("feed message version %d type %q", doc.Version, doc.Type)
	}
	return doc
}

// drain receives and deletes until want results arrived (by resultId) or
// the time is up, and returns every entry received.
func (c *feedConsumer) drain(want int, within time.Duration) map[string]resultsfeed.Entry {
	c.t.Helper()
	got := map[string]resultsfeed.Entry{}
	deadline := time.Now().Add(within)
	for len(got) < want && time.Now().Before(deadline) {
		for _, m := range c.receive(c.url, 30) {
			for _, e := range decodeFeed(c.t, m).Results {
				got[e.ResultID] = e
			}
			if _, err := c.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(c.url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				c.t.Fatalf("delete: %v", err)
			}
		}
	}
	return got
}

// sendResults authenticates a raw satellite through the core URL and
// sends results: n authorised ones (half in the listed environment) and
// two that authorisation refuses. It returns the executedAt of each
// authorised one.
func sendResults(t *testing.T, s *localstack.Stack, satID string, n int) map[string]bool {
	t.Helper()
	tok := createSatellite(t, s, satID, feedCheck)
	c := dial(t, satelliteURL(t, s))
	c.send(map[string]any{"type": "authenticate", "clientId": satID, "token": tok})
	c.expect("authenticated")
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	sent := map[string]bool{}
	for i := range n {
		at := base.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano)
		frame := map[string]any{"type": "result", "configId": "cfg-feed", "systemId": "sys-feed", "status": "healthy", "latencyMs": float64(i),
			"executedAt": at, "result": map[string]any{"status": "healthy", "latencyMs": i, "metadata": map[string]any{"connected": true, "n": i}}}
		if i%2 == 1 {
			frame["environmentId"] = "env-prod"
		}
		c.send(frame)
		sent[at] = true
	}
	// Refused: an unassigned check, and an environment the assignment
	// does not list.
	c.send(map[string]any{"type": "result", "configId": "cfg-unassigned", "systemId": "sys-feed", "status": "unhealthy", "executedAt": base.Format(time.RFC3339Nano)})
	c.send(map[string]any{"type": "result", "configId": "cfg-feed", "systemId": "sys-feed", "status": "unhealthy", "environmentId": "env-staging", "executedAt": base.Format(time.RFC3339Nano)})
	c.send(map[string]any{"type": "heartbeat", "version": "feed", "uptimeSeconds": 1})
	return sent
}

func TestResultsFeedDeliversEveryStoredResultInProcess(t *testing.T) {
	resultsFeedDeliversEveryStoredResult(t, localstack.InProcess)
}

func TestResultsFeedDeliversEveryStoredResultUnderRuntimeEmulator(t *testing.T) {
	resultsFeedDeliversEveryStoredResult(t, localstack.RIE)
}

func resultsFeedDeliversEveryStoredResult(t *testing.T, mode localstack.Mode) {
	s := startStack(t, mode)
	const n = 40
	sent := sendResults(t, s, "sat-feed", n)
	got := newFeedConsumer(t, s).drain(n, 60*time.Second)

	// Every stored result arrived, under the id it is stored with.
	var stored []string
	rs, err := s.Registry.LatestResults(ctx, "cfg-feed", "sys-feed", nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		stored = append(stored, r.ID)
	}
	stored = uniqueStrings(stored)
	if len(stored) != n {
		t.Fatalf("%d results stored, want %d", len(stored), n)
	}
	for _, id := range stored {
		if _, ok := got[id]; !ok {
			t.Errorf("stored result %s never reached the feed", id)
		}
	}
	if len(got) != n {
		t.Errorf("the feed carried %d results, want the %d stored (refused results must never appear)", len(got), n)
	}
	sequences := map[string]bool{}
	for id, e := range got {
		if e.ConfigID != "cfg-feed" || e.SystemID != "sys-feed" || e.Status != "healthy" || e.SatelliteID != "sat-feed" || e.SourceLabel != "Sat sat-feed (eu-test-1)" {
			t.Errorf("entry %s = %+v", id, e)
		}
		if !sent[e.ExecutedAt] {
			t.Errorf("entry %s executedAt %s was not sent", id, e.ExecutedAt)
		}
		var detail map[string]any
		if err := json.Unmarshal(e.Result, &detail); err != nil || detail["metadata"].(map[string]any)["n"] != *e.LatencyMs {
			t.Errorf("entry %s result %s, latencyMs %v: not the object sent", id, e.Result, e.LatencyMs)
		}
		if odd := int(*e.LatencyMs)%2 == 1; odd != (e.EnvironmentID != nil && *e.EnvironmentID == "env-prod") {
			t.Errorf("entry %s environmentId %v for run %v", id, e.EnvironmentID, *e.LatencyMs)
		}
		if want := resultsfeed.Sequence(mustTime(t, e.ReceivedAt), id); e.Sequence != want || sequences[e.Sequence] {
			t.Errorf("entry %s sequence %q, want a unique %q", id, e.Sequence, want)
		}
		sequences[e.Sequence] = true
	}
}

func TestResultsFeedRedeliveryIsRecognisable(t *testing.T) {
	s := startStack(t, localstack.InProcess)
	sendResults(t, s, "sat-feed-re", 4)
	c := newFeedConsumer(t, s)
	var first []sqstypes.Message
	for deadline := time.Now().Add(30 * time.Second); len(first) == 0 && time.Now().Before(deadline); {
		first = c.receive(c.url, 1) // not deleted: back in a second
	}
	if len(first) == 0 {
		t.Fatal("no feed message")
	}
	want := decodeFeed(t, first[0])
	var again *sqstypes.Message
	for deadline := time.Now().Add(10 * time.Second); again == nil && time.Now().Before(deadline); {
		for _, m := range c.receive(c.url, 30) {
			if aws.ToString(m.MessageId) == aws.ToString(first[0].MessageId) {
				again = &m
			}
		}
	}
	if again == nil {
		t.Fatal("a message received and not deleted was not delivered again")
	}
	if n := again.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]; n != "2" {
		t.Errorf("ApproximateReceiveCount %q on the redelivery, want 2", n)
	}
	got := decodeFeed(t, *again)
	if len(got.Results) != len(want.Results) {
		t.Fatalf("redelivery holds %d results, the first delivery %d", len(got.Results), len(want.Results))
	}
	for i := range want.Results {
		if got.Results[i].ResultID != want.Results[i].ResultID {
			t.Errorf("redelivered result %d has id %s, first delivered as %s", i, got.Results[i].ResultID, want.Results[i].ResultID)
		}
	}
}

// TestAFailingConsumerLosesNothing receives a message and never deletes it,
// as a consumer that crashes on it would: after the template's
// maxReceiveCount receives it moves to the dead-letter queue, intact.
func TestAFailingConsumerLosesNothing(t *testing.T) {
	s := startStack(t, localstack.InProcess)
	sendResults(t, s, "sat-feed-dlq", 2)
	c := newFeedConsumer(t, s)
	redrive := testenv.Template(t).Resources["ResultsFeedQueue"].Properties["RedrivePolicy"].(map[string]any)
	maxReceives, _ := strconv.Atoi(fmt.Sprint(redrive["maxReceiveCount"]))
	if maxReceives < 1 {
		t.Fatalf("maxReceiveCount %v", redrive["maxReceiveCount"])
	}
	var body string
	var id string
	for deadline := time.Now().Add(30 * time.Second); id == "" && time.Now().Before(deadline); {
		if ms := c.receive(c.url, 1); len(ms) > 0 {
			id, body = aws.ToString(ms[0].MessageId), aws.ToString(ms[0].Body)
		}
	}
	if id == "" {
		t.Fatal("no feed message")
	}
	// Each receive hides the message for a second (the SDK does not send
	// a visibility timeout of 0); the consumer never deletes it.
	deadline := time.Now().Add(time.Duration(maxReceives)*3*time.Second + 10*time.Second)
	for receives := 1; receives < maxReceives; {
		if time.Now().After(deadline) {
			t.Fatalf("received %d times, want %d", receives, maxReceives)
		}
		for _, m := range c.receive(c.url, 1) {
			if aws.ToString(m.MessageId) == id {
				receives++
			}
		}
	}
	// Receives past maxReceiveCount get nothing: it moved.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		for _, m := range c.receive(c.url, 1) {
			if aws.ToString(m.MessageId) == id {
				t.Fatalf("message delivered %d times, more than maxReceiveCount", maxReceives+1)
			}
		}
	}
	dlq := s.Queues["ResultsFeedDeadLetterQueue"]
	var moved []sqstypes.Message
	for deadline := time.Now().Add(10 * time.Second); len(moved) == 0 && time.Now().Before(deadline); {
		moved = c.receive(dlq, 30)
	}
	if len(moved) != 1 || aws.ToString(moved[0].MessageId) != id || aws.ToString(moved[0].Body) != body {
		t.Fatalf("dead-letter queue holds %d messages, want the failed one intact", len(moved))
	}
}

// TestAResultDatedAheadIsStoredAndFed sends, through the core URL, a
// result dated an hour ahead of the backend's clock (a satellite whose
// clock runs fast) and then one on time: both are stored and fed, the one
// dated ahead marked with clockSkewMs and never listed as the latest,
// counted in ResultsClockSkewed.
func TestAResultDatedAheadIsStoredAndFed(t *testing.T) {
	s, logs := startStackWithLogs(t, localstack.InProcess)
	tok := createSatellite(t, s, "sat-fast", feedCheck)
	c := dial(t, satelliteURL(t, s))
	c.send(map[string]any{"type": "authenticate", "clientId": "sat-fast", "token": tok})
	c.expect("authenticated")
	result := func(at time.Time) string {
		executed := at.UTC().Format(time.RFC3339Nano)
		c.send(map[string]any{"type": "result", "configId": "cfg-feed", "systemId": "sys-feed", "status": "healthy", "executedAt": executed})
		return executed
	}
	stored := func(n int) func() bool {
		return func() bool {
			rs, err := s.Registry.LatestResults(ctx, "cfg-feed", "sys-feed", nil, 10)
			return err == nil && len(rs) == n
		}
	}
	sent := time.Now()
	ahead := result(sent.Add(time.Hour))
	testenv.Eventually(t, "the result dated ahead stored", stored(1))
	onTime := result(time.Now())
	testenv.Eventually(t, "the result on time stored", stored(2))

	// GET /results: the one on time is the latest; the one dated ahead is
	// listed by its receipt, marked.
	view := admin(t, s, "GET", "/results?configId=cfg-feed&systemId=sys-feed", nil)
	listed, _ := view["results"].([]any)
	if len(listed) != 2 {
		t.Fatalf("GET /results lists %v", view)
	}
	latest, skewed := listed[0].(map[string]any), listed[1].(map[string]any)
	if latest["executedAt"] != onTime || latest["clockSkewMs"] != nil {
		t.Errorf("latest = %v, want the result on time, unmarked", latest)
	}
	skewMs, _ := skewed["clockSkewMs"].(float64)
	if skewed["executedAt"] != ahead || skewMs < float64((time.Hour-time.Minute).Milliseconds()) || skewMs > float64(time.Hour.Milliseconds()) {
		t.Errorf("dated ahead = %v, want executedAt %s as sent and clockSkewMs about an hour", skewed, ahead)
	}

	// The feed carries both, the one dated ahead with its mark.
	feed := newFeedConsumer(t, s)
	got := map[string]map[string]any{}
	for deadline := time.Now().Add(60 * time.Second); len(got) < 2 && time.Now().Before(deadline); {
		for _, m := range feed.receive(feed.url, 30) {
			var doc struct{ Results []map[string]any }
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &doc); err != nil {
				t.Fatal(err)
			}
			for _, e := range doc.Results {
				got[e["executedAt"].(string)] = e
			}
			if _, err := feed.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(feed.url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if e, ok := got[ahead]; !ok || e["clockSkewMs"] != skewMs || e["receivedAt"] != skewed["receivedAt"] {
		t.Errorf("the feed carried the result dated ahead as %v, want clockSkewMs %v", e, skewMs)
	}
	if e, ok := got[onTime]; !ok || e["clockSkewMs"] != nil {
		t.Errorf("the feed carried the result on time as %v", e)
	}
	testenv.Eventually(t, "the message function's metrics written", func() bool {
		return strings.Contains(logs.String(), `"ResultsClockSkewed"`)
	})
	checkMetricsAgainstDocs(t, logs.String(), []string{"ResultsStored", "ResultsClockSkewed"})
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return v
}

func uniqueStrings(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// TestTheExampleConsumerIngestsEveryResult runs the documented TypeScript
// consumer (AWS SDK v3, built by make tools) against the local feed, as the
// core would: every stored result becomes one ingestSatelliteResult call.
func TestTheExampleConsumerIngestsEveryResult(t *testing.T) {
	root := testenv.RepoRoot(t)
	main := filepath.Join(root, "docs", "examples", "results-consumer", "dist", "main.js")
	if _, err := os.Stat(main); err != nil {
		t.Fatalf("the example consumer is not built (make tools builds it): %v", err)
	}
	s := startStack(t, localstack.InProcess)
	const n = 12
	sendResults(t, s, "sat-feed-ts", n)
	runCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(runCtx, "node", main)
	cmd.Env = append(os.Environ(),
		"RESULTS_FEED_QUEUE_URL="+s.ResultsFeedQueueURL, "AWS_ENDPOINT_URL_SQS="+s.SQSEndpoint, "AWS_REGION="+localaws.Region,
		"AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "MAX_RESULTS="+strconv.Itoa(n))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("consumer: %v\n%s", err, stderr.String())
	}
	type call struct {
		ResultID string         `json:"resultId"`
		Input    map[string]any `json:"ingestSatelliteResult"`
	}
	calls := map[string]call{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var c call
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("consumer printed %q: %v", line, err)
		}
		calls[c.ResultID] = c
	}
	rs, err := s.Registry.LatestResults(ctx, "cfg-feed", "sys-feed", nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != n || len(calls) != n {
		t.Fatalf("%d stored, %d ingested; want %d each", len(rs), len(calls), n)
	}
	for _, r := range rs {
		c, ok := calls[r.ID]
		if !ok {
			t.Errorf("result %s was not ingested", r.ID)
			continue
		}
		in := c.Input
		if in["configId"] != r.ConfigID || in["systemId"] != r.SystemID || in["sourceId"] != r.SatelliteID || in["sourceLabel"] != r.Source ||
			in["status"] != string(r.Status) || in["latencyMs"] != *r.LatencyMs || in["executedAt"] != r.ExecutedAt.UTC().Format(time.RFC3339Nano) {
			t.Errorf("ingest input %v for stored result %+v", in, r)
		}
		if env, _ := in["environmentId"].(string); (r.EnvironmentID == nil) != (in["environmentId"] == nil) || r.EnvironmentID != nil && env != *r.EnvironmentID {
			t.Errorf("environmentId %v for stored %v", in["environmentId"], r.EnvironmentID)
		}
		if _, ok := in["result"].(map[string]any); !ok {
			t.Errorf("result object not passed on: %v", in["result"])
		}
	}
}
