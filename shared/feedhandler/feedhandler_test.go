package feedhandler_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/feedhandler"
	"github.com/checkstack/satellite-backend/shared/resultsfeed"
	"github.com/checkstack/satellite-backend/shared/sqsqueue"
)

// streamEvent loads events/feed-results-stream.json: two stored results as
// Lambda delivers the Results table's stream.
func streamEvent(t *testing.T) events.DynamoDBEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "events", "feed-results-stream.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func handler(t *testing.T, queueName string) (*feedhandler.Handler, *localaws.SQSServer) {
	t.Helper()
	srv, err := localaws.StartSQS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if _, err := srv.CreateQueue("feed", nil); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	q := sqsqueue.New(localaws.SQSClient(srv.URL), srv.QueueURL(queueName))
	return &feedhandler.Handler{Feed: &resultsfeed.Feed{Queue: q, Log: log}, Log: log}, srv
}

func TestStreamRecordsBecomeOneMessage(t *testing.T) {
	h, srv := handler(t, "feed")
	ev := streamEvent(t)
	// An expiry and an update are not new results.
	remove := ev.Records[0]
	remove.EventName = "REMOVE"
	modify := ev.Records[1]
	modify.EventName = "MODIFY"
	ev.Records = append(ev.Records, remove, modify)
	resp, err := h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v", resp, err)
	}
	out, err := localaws.SQSClient(srv.URL).ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(srv.QueueURL("feed")), MaxNumberOfMessages: 10})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("queue holds %d messages (%v), want 1", len(out.Messages), err)
	}
	var m resultsfeed.Message
	if err := json.Unmarshal([]byte(aws.ToString(out.Messages[0].Body)), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Results) != 2 {
		t.Fatalf("%d results, want the 2 inserted", len(m.Results))
	}
	first, second := m.Results[0], m.Results[1]
	if first.ResultID != "Yq1ZbHPUjoEFdJg=" || first.EnvironmentID == nil || *first.EnvironmentID != "env-prod" || *first.LatencyMs != 42.5 ||
		first.ExecutedAt != "2026-11-27T08:00:04.5Z" || first.SourceLabel != "Demo satellite (local)" || first.Sequence != "1795766405001-Yq1ZbHPUjoEFdJg=" {
		t.Errorf("first entry %+v", first)
	}
	if second.ResultID != "Yq1ZcAAAjoEFdJg=" || second.Status != "unhealthy" || second.EnvironmentID != nil || second.LatencyMs != nil || string(second.Result) != "null" {
		t.Errorf("second entry %+v", second)
	}
}

func TestAFailedSendIsRetriedFromTheFirstResult(t *testing.T) {
	h, _ := handler(t, "no-such-queue")
	ev := streamEvent(t)
	resp, err := h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("Handle returned an error: %v (a failed send is a partial batch response)", err)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].Change.SequenceNumber {
		t.Errorf("batch item failures %+v, want the first record's sequence number", resp.BatchItemFailures)
	}
}

func TestARecordThatIsNotAResultDoesNotStopTheShard(t *testing.T) {
	h, _ := handler(t, "feed")
	ev := streamEvent(t)
	delete(ev.Records[0].Change.NewImage, "configId")
	if resp, err := h.Handle(context.Background(), ev); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Errorf("Handle = %+v, %v; want the malformed record skipped", resp, err)
	}
}

// TestFeedPolicyGrantsExactlyWhatItCalls records the feed function's
// requests and checks its IAM policy in template.yaml grants those and
// nothing more. (Its reads of the stream are the event source mapping's,
// which Lambda makes with the function's role: testenv.LambdaGrants.)
func TestFeedPolicyGrantsExactlyWhatItCalls(t *testing.T) {
	srv, err := localaws.StartSQS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	url, err := srv.CreateQueue("ResultsFeedQueue", nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := &testenv.Calls{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	q := sqsqueue.New(localaws.SQSClient(srv.URL, calls.SQSOption), url)
	h := &feedhandler.Handler{Feed: &resultsfeed.Feed{Queue: q, Log: log}, Log: log}
	if resp, err := h.Handle(context.Background(), streamEvent(t)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v", resp, err)
	}
	testenv.CheckPolicy(t, testenv.Template(t), "FeedFunction", calls, nil, "")
}
