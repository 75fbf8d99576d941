package samtemplate_test

import (
	"slices"
	"testing"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// TestResultsFeedDeliversEveryStoredResultAtLeastOnce checks the feed's
// wiring: the Results table's stream (new images) drives the feed function
// through an event source mapping that passes only inserts, retries a batch
// from the first result not sent until its records expire, and then tells
// a failure queue an alarm watches; the function may only send to the feed
// queue, which is encrypted, keeps messages 14 days and dead-letters what a
// consumer fails on, under an alarm; the outputs give a consumer its queue
// and policy.
func TestResultsFeedDeliversEveryStoredResultAtLeastOnce(t *testing.T) {
	tpl, _ := load(t)
	stream, _ := tpl.Resources["ResultsTable"].Properties["StreamSpecification"].(map[string]any)
	if stream["StreamViewType"] != "NEW_IMAGE" {
		t.Errorf("Results table stream = %v, want NEW_IMAGE", stream)
	}
	fn := tpl.Resources["FeedFunction"].Properties
	ev := fn["Events"].(map[string]any)["ResultsStream"].(map[string]any)
	p := ev["Properties"].(map[string]any)
	if table, attr, _ := samtemplate.GetAtt(p["Stream"]); ev["Type"] != "DynamoDB" || table != "ResultsTable" || attr != "StreamArn" {
		t.Errorf("feed event = %v", ev)
	}
	if !slices.Contains(asList(p["FunctionResponseTypes"]), any("ReportBatchItemFailures")) {
		t.Errorf("the feed does not report batch item failures: a failed send would retry (or lose) the whole batch")
	}
	if p["MaximumRetryAttempts"] != float64(-1) || p["MaximumRecordAgeInSeconds"] != float64(-1) {
		t.Errorf("retries %v, record age %v: want until the stream record expires", p["MaximumRetryAttempts"], p["MaximumRecordAgeInSeconds"])
	}
	filters := p["FilterCriteria"].(map[string]any)["Filters"].([]any)
	if len(filters) != 1 || filters[0].(map[string]any)["Pattern"] != `{"eventName": ["INSERT"]}` {
		t.Errorf("filters %v, want inserts only", filters)
	}
	onFailure := p["DestinationConfig"].(map[string]any)["OnFailure"].(map[string]any)
	if q, _, _ := samtemplate.GetAtt(onFailure["Destination"]); q != "FeedFailureQueue" || onFailure["Type"] != "SQS" {
		t.Errorf("on failure %v", onFailure)
	}
	if ref, _ := samtemplate.Ref(fn["Environment"].(map[string]any)["Variables"].(map[string]any)["RESULTS_FEED_QUEUE_URL"]); ref != "ResultsFeedQueue" {
		t.Errorf("RESULTS_FEED_QUEUE_URL is not the feed queue")
	}
	stmts, err := tpl.PolicyStatements("FeedFunction")
	if err != nil {
		t.Fatal(err)
	}
	// Besides what Lambda does with its role (its logs, the stream, the
	// failure queue: testenv.LambdaGrants), the function may only send to
	// the feed queue; the IAM policy test checks the exact set.
	var sends []string
	for _, st := range stmts {
		if slices.Contains(st.Actions, "sqs:SendMessage") {
			for _, r := range st.Resources {
				q, _, _ := samtemplate.GetAtt(r)
				sends = append(sends, q)
			}
		}
	}
	if slices.Sort(sends); !slices.Equal(sends, []string{"FeedFailureQueue", "ResultsFeedQueue"}) {
		t.Errorf("feed function may send to %v, want the feed queue and (Lambda, for the mapping) the feed failure queue", sends)
	}

	queue := tpl.Resources["ResultsFeedQueue"].Properties
	if queue["SqsManagedSseEnabled"] != true || queue["MessageRetentionPeriod"] != float64(1209600) {
		t.Errorf("feed queue %v", queue)
	}
	redrive := queue["RedrivePolicy"].(map[string]any)
	if dlq, _, _ := samtemplate.GetAtt(redrive["deadLetterTargetArn"]); dlq != "ResultsFeedDeadLetterQueue" {
		t.Errorf("redrive %v", redrive)
	}
	watched := map[string]string{}
	for _, id := range tpl.ResourcesOfType("AWS::CloudWatch::Alarm") {
		ap := tpl.Resources[id].Properties
		for _, d := range asList(ap["Dimensions"]) {
			if r, _, ok := samtemplate.GetAtt(d.(map[string]any)["Value"]); ok {
				watched[r+" "+ap["MetricName"].(string)] = id
			}
			if r, ok := samtemplate.Ref(d.(map[string]any)["Value"]); ok {
				watched[r+" "+ap["MetricName"].(string)] = id
			}
		}
	}
	for _, w := range []string{
		"ResultsFeedDeadLetterQueue ApproximateNumberOfMessagesVisible", "FeedFailureQueue ApproximateNumberOfMessagesVisible",
		"ResultsFeedQueue ApproximateAgeOfOldestMessage", "FeedFunction IteratorAge",
	} {
		if watched[w] == "" {
			t.Errorf("no alarm watches %s", w)
		}
	}

	for _, out := range []string{"ResultsFeedQueueURL", "ResultsFeedQueueArn", "ResultsFeedDeadLetterQueueURL", "ResultsFeedConsumerPolicyArn"} {
		if tpl.Outputs[out] == nil {
			t.Errorf("no output %s", out)
		}
	}
	doc := tpl.Resources["ResultsFeedConsumerPolicy"].Properties["PolicyDocument"].(map[string]any)
	actions := asList(doc["Statement"].([]any)[0].(map[string]any)["Action"])
	for _, a := range []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"} {
		if !slices.Contains(actions, any(a)) {
			t.Errorf("consumer policy lacks %s", a)
		}
	}
}
