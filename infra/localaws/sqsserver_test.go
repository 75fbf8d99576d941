package localaws_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// The local SQS server, driven by the AWS SDK's own client: what a
// producer and a consumer of a standard queue rely on, as SQS documents it.

type sqsFixture struct {
	srv    *localaws.SQSServer
	client *sqs.Client
	mu     sync.Mutex
	now    time.Time
}

func startSQS(t *testing.T) *sqsFixture {
	t.Helper()
	srv, err := localaws.StartSQS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	f := &sqsFixture{srv: srv, client: localaws.SQSClient(srv.URL), now: time.Now()}
	return f
}

// moveClock makes the server's clock a test's: time moves only by advance.
func (f *sqsFixture) moveClock() {
	f.srv.Now = func() time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.now
	}
}

func (f *sqsFixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *sqsFixture) queue(t *testing.T, name string, attrs map[string]string) string {
	t.Helper()
	out, err := f.client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

func (f *sqsFixture) receive(t *testing.T, url string, wait int32) []types.Message {
	t.Helper()
	out, err := f.client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: wait,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Messages
}

func TestSQSSendReceiveDeleteWithTheSDK(t *testing.T) {
	f := startSQS(t)
	ctx := context.Background()
	url := f.queue(t, "plain", nil)
	body := `{"ünïcode":"✓","tab":"\t"}`
	// The SDK checks MD5OfMessageBody and MD5OfMessageAttributes.
	if _, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body),
		MessageAttributes: map[string]types.MessageAttributeValue{"kind": {DataType: aws.String("String"), StringValue: aws.String("results")}, "n": {DataType: aws.String("Number"), StringValue: aws.String("1")}},
	}); err != nil {
		t.Fatal(err)
	}
	ms := f.receive(t, url, 0)
	if len(ms) != 1 || aws.ToString(ms[0].Body) != body || ms[0].Attributes["ApproximateReceiveCount"] != "1" {
		t.Fatalf("received %+v", ms)
	}
	if _, err := f.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: ms[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if ms := f.receive(t, url, 0); len(ms) != 0 {
		t.Errorf("a deleted message came back")
	}
	// Unknown queues and handles are the SDK's typed errors.
	var noQueue *types.QueueDoesNotExist
	if _, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(f.srv.QueueURL("missing")), MessageBody: aws.String("x")}); !errors.As(err, &noQueue) {
		t.Errorf("send to a missing queue: %v, want QueueDoesNotExist", err)
	}
	var badHandle *types.ReceiptHandleIsInvalid
	if _, err := f.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: aws.String("nonsense")}); !errors.As(err, &badHandle) {
		t.Errorf("delete with a made-up handle: %v, want ReceiptHandleIsInvalid", err)
	}
}

func TestSQSBatchesReportEachEntry(t *testing.T) {
	f := startSQS(t)
	ctx := context.Background()
	url := f.queue(t, "batch", nil)
	_, err := f.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("ok"), MessageBody: aws.String("fine")},
		{Id: aws.String("bad"), MessageBody: aws.String("not \uffff allowed")},
		{Id: aws.String("big"), MessageBody: aws.String(strings.Repeat("x", 1<<20+1))},
	}})
	var tooLong *types.BatchRequestTooLong
	if !errors.As(err, &tooLong) {
		t.Fatalf("a batch over 1 MiB: %v, want BatchRequestTooLong", err)
	}
	out, err := f.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("ok"), MessageBody: aws.String("fine")},
		{Id: aws.String("bad"), MessageBody: aws.String("not \uffff allowed")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 1 || aws.ToString(out.Successful[0].Id) != "ok" || len(out.Failed) != 1 ||
		aws.ToString(out.Failed[0].Id) != "bad" || !out.Failed[0].SenderFault || aws.ToString(out.Failed[0].Code) != "InvalidMessageContents" {
		t.Errorf("batch outcome %+v %+v", out.Successful, out.Failed)
	}
	var entries []types.SendMessageBatchRequestEntry
	for i := range 11 {
		entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(string(rune('a' + i))), MessageBody: aws.String("m")})
	}
	var tooMany *types.TooManyEntriesInBatchRequest
	if _, err := f.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); !errors.As(err, &tooMany) {
		t.Errorf("11 entries: %v, want TooManyEntriesInBatchRequest", err)
	}
}

func TestSQSRedeliversAfterTheVisibilityTimeoutAndRedrives(t *testing.T) {
	f := startSQS(t)
	f.moveClock()
	ctx := context.Background()
	dlq := f.queue(t, "dead", nil)
	url := f.queue(t, "work", map[string]string{"VisibilityTimeout": "30",
		"RedrivePolicy": `{"deadLetterTargetArn":"` + f.srv.QueueARN("dead") + `","maxReceiveCount":"3"}`})
	if _, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("poison")}); err != nil {
		t.Fatal(err)
	}
	var handles []string
	for i := 1; i <= 3; i++ {
		ms := f.receive(t, url, 0)
		if len(ms) != 1 || ms[0].Attributes["ApproximateReceiveCount"] != string(rune('0'+i)) {
			t.Fatalf("receive %d: %+v", i, ms)
		}
		handles = append(handles, aws.ToString(ms[0].ReceiptHandle))
		if again := f.receive(t, url, 0); len(again) != 0 {
			t.Fatalf("an invisible message was received")
		}
		f.advance(31 * time.Second)
	}
	// A stale handle deletes nothing, as in SQS.
	if _, err := f.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: aws.String(handles[0])}); err != nil {
		t.Fatal(err)
	}
	if ms := f.receive(t, url, 0); len(ms) != 0 {
		t.Fatalf("received a 4th time, past maxReceiveCount 3")
	}
	if ms := f.receive(t, dlq, 0); len(ms) != 1 || aws.ToString(ms[0].Body) != "poison" {
		t.Fatalf("dead-letter queue: %+v", ms)
	}
}

func TestSQSLongPollWakesOnSendAndRetentionExpires(t *testing.T) {
	f := startSQS(t)
	ctx := context.Background()
	url := f.queue(t, "poll", map[string]string{"MessageRetentionPeriod": "60"})
	done := make(chan []types.Message, 1)
	go func() { done <- f.receive(t, url, 20) }()
	time.Sleep(200 * time.Millisecond)
	if _, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("wake")}); err != nil {
		t.Fatal(err)
	}
	select {
	case ms := <-done:
		if len(ms) != 1 {
			t.Fatalf("long poll returned %d messages", len(ms))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a long poll did not return when a message arrived")
	}
	f.moveClock()
	if _, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("old")}); err != nil {
		t.Fatal(err)
	}
	f.advance(61 * time.Second)
	if ms := f.receive(t, url, 0); len(ms) != 0 {
		t.Errorf("a message past its retention was received")
	}
}

func TestSQSQueuesFromTheTemplate(t *testing.T) {
	f := startSQS(t)
	root, _ := samtemplate.FindRepoRoot()
	tpl, err := samtemplate.Load(root + "/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, id := range tpl.ResourcesOfType("AWS::SQS::Queue") {
		names[id] = "t-" + id
	}
	if err := f.srv.CreateQueues(tpl, names); err != nil {
		t.Fatal(err)
	}
	out, err := f.client.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(f.srv.QueueURL(names["ResultsFeedQueue"])), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Attributes["MessageRetentionPeriod"] != "1209600" || !strings.Contains(out.Attributes["RedrivePolicy"], f.srv.QueueARN(names["ResultsFeedDeadLetterQueue"])) {
		t.Errorf("results feed queue attributes %v", out.Attributes)
	}
}
