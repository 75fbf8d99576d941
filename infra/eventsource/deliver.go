package eventsource

// Delivering a batch: invoking the function with the DynamoDBEvent Lambda
// sends, retrying, the on-failure destination, and the filter criteria.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	st "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// deliver invokes the function with a batch until it succeeds or the
// retries run out (then the on-failure destination hears of it). It
// reports false when the runner is stopping.
func (r *Runner) deliver(ctx context.Context, m Mapping, stream, shard string, batch []st.Record, log *slog.Logger) bool {
	var pass []st.Record
	for _, rec := range batch {
		if matches(m.Filters, rec) {
			pass = append(pass, rec)
		}
	}
	for attempt := 0; len(pass) > 0; attempt++ {
		failedFrom, err := r.invoke(ctx, m, stream, pass)
		if ctx.Err() != nil {
			return false
		}
		if err == nil && failedFrom < 0 {
			return true
		}
		if err == nil {
			// Lambda retries from the reported record on.
			pass = pass[failedFrom:]
		}
		if m.MaxRetries >= 0 && attempt >= m.MaxRetries {
			r.discard(ctx, m, stream, shard, pass, err, log)
			return true
		}
		reason := "reported batch item failures"
		if err != nil {
			reason = err.Error()
		}
		log.Warn("stream batch failed; retrying", "records", len(pass), "attempt", attempt+1, "reason", reason)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(r.cfg.RetryDelay):
		}
	}
	return true
}

// invoke runs the function once. It returns the index of the first record
// to retry from (-1 when none) or the invocation's error.
func (r *Runner) invoke(ctx context.Context, m Mapping, stream string, records []st.Record) (int, error) {
	ev := events.DynamoDBEvent{Records: make([]events.DynamoDBEventRecord, 0, len(records))}
	for _, rec := range records {
		e, err := eventRecord(rec, stream)
		if err != nil {
			return 0, err
		}
		ev.Records = append(ev.Records, e)
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return 0, err
	}
	if r.cfg.Timeout != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.cfg.Timeout(m.Function))
		defer cancel()
	}
	out, err := r.cfg.Invoker.Invoke(ctx, m.Function, payload)
	if err != nil {
		return 0, err
	}
	if !m.ReportItemFailures || len(out) == 0 || string(out) == "null" {
		return -1, nil
	}
	var resp events.DynamoDBEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return 0, fmt.Errorf("response is not a batch item failure report: %w", err)
	}
	if len(resp.BatchItemFailures) == 0 {
		return -1, nil
	}
	// Lambda retries from the lowest sequence number reported.
	first := -1
	for _, f := range resp.BatchItemFailures {
		for i, rec := range records {
			if aws.ToString(rec.Dynamodb.SequenceNumber) == f.ItemIdentifier && (first < 0 || i < first) {
				first = i
			}
		}
		if first < 0 {
			// An identifier that is not in the batch: Lambda retries the
			// whole batch.
			return 0, nil
		}
	}
	return first, nil
}

// discard sends the on-failure destination Lambda's metadata of a batch it
// gave up on (the records themselves are not in it).
func (r *Runner) discard(ctx context.Context, m Mapping, stream, shard string, records []st.Record, cause error, log *slog.Logger) {
	condition := "RetryAttemptsExhausted"
	if cause != nil {
		condition = "RetryAttemptsExhausted: " + cause.Error()
	}
	first, last := records[0].Dynamodb, records[len(records)-1].Dynamodb
	doc := map[string]any{
		"requestContext": map[string]any{"functionArn": m.Function, "condition": condition, "approximateInvokeCount": m.MaxRetries + 1},
		"version":        "1.0",
		"timestamp":      time.Now().UTC().Format(time.RFC3339Nano),
		"DDBStreamBatchInfo": map[string]any{
			"shardId": shard, "streamArn": stream, "batchSize": len(records),
			"startSequenceNumber": aws.ToString(first.SequenceNumber), "endSequenceNumber": aws.ToString(last.SequenceNumber),
			"approximateArrivalOfFirstRecord": aws.ToTime(first.ApproximateCreationDateTime).UTC().Format(time.RFC3339),
			"approximateArrivalOfLastRecord":  aws.ToTime(last.ApproximateCreationDateTime).UTC().Format(time.RFC3339),
		},
	}
	log.Error("stream batch discarded after its retries", "records", len(records), "onFailure", m.OnFailureQueue)
	url := r.cfg.Queues[m.OnFailureQueue]
	if m.OnFailureQueue == "" || r.cfg.Send == nil || url == "" {
		return
	}
	b, _ := json.Marshal(doc)
	if err := r.cfg.Send(ctx, url, string(b)); err != nil {
		log.Error("on-failure destination not reached", "error", err.Error())
	}
}

// eventRecord is a stream record as Lambda puts it in a DynamoDBEvent.
func eventRecord(rec st.Record, stream string) (events.DynamoDBEventRecord, error) {
	d := rec.Dynamodb
	change := map[string]any{
		"Keys":           image(d.Keys),
		"SequenceNumber": aws.ToString(d.SequenceNumber),
		"SizeBytes":      aws.ToInt64(d.SizeBytes),
		"StreamViewType": string(d.StreamViewType),
	}
	if d.ApproximateCreationDateTime != nil {
		change["ApproximateCreationDateTime"] = d.ApproximateCreationDateTime.Unix()
	}
	if d.NewImage != nil {
		change["NewImage"] = image(d.NewImage)
	}
	if d.OldImage != nil {
		change["OldImage"] = image(d.OldImage)
	}
	raw, err := json.Marshal(map[string]any{
		"eventID": aws.ToString(rec.EventID), "eventName": string(rec.EventName), "eventVersion": aws.ToString(rec.EventVersion),
		"eventSource": "aws:dynamodb", "awsRegion": aws.ToString(rec.AwsRegion), "eventSourceARN": stream, "dynamodb": change,
	})
	if err != nil {
		return events.DynamoDBEventRecord{}, err
	}
	var out events.DynamoDBEventRecord
	err = json.Unmarshal(raw, &out)
	return out, err
}

// image is an item in DynamoDB's JSON form ({"S": ...}, {"N": ...}, ...).
func image(it map[string]st.AttributeValue) map[string]any {
	out := make(map[string]any, len(it))
	for k, v := range it {
		out[k] = value(v)
	}
	return out
}

func value(v st.AttributeValue) any {
	switch v := v.(type) {
	case *st.AttributeValueMemberS:
		return map[string]any{"S": v.Value}
	case *st.AttributeValueMemberN:
		return map[string]any{"N": v.Value}
	case *st.AttributeValueMemberB:
		return map[string]any{"B": base64.StdEncoding.EncodeToString(v.Value)}
	case *st.AttributeValueMemberBOOL:
		return map[string]any{"BOOL": v.Value}
	case *st.AttributeValueMemberNULL:
		return map[string]any{"NULL": true}
	case *st.AttributeValueMemberSS:
		return map[string]any{"SS": v.Value}
	case *st.AttributeValueMemberNS:
		return map[string]any{"NS": v.Value}
	case *st.AttributeValueMemberBS:
		enc := make([]string, len(v.Value))
		for i, b := range v.Value {
			enc[i] = base64.StdEncoding.EncodeToString(b)
		}
		return map[string]any{"BS": enc}
	case *st.AttributeValueMemberL:
		l := make([]any, len(v.Value))
		for i, x := range v.Value {
			l[i] = value(x)
		}
		return map[string]any{"L": l}
	case *st.AttributeValueMemberM:
		return map[string]any{"M": image(v.Value)}
	}
	return map[string]any{"NULL": true}
}

// matches reports whether a record passes the filters: Lambda matches
// each pattern against the record as the function would receive it,
// field by field, a list of values meaning any of them. Only that exact
// value matching is supported here (the template uses no other).
func matches(filters []map[string]any, rec st.Record) bool {
	if len(filters) == 0 {
		return true
	}
	doc := map[string]any{
		"eventName": string(rec.EventName), "eventSource": "aws:dynamodb", "awsRegion": aws.ToString(rec.AwsRegion),
		"dynamodb": map[string]any{"Keys": image(rec.Dynamodb.Keys), "NewImage": image(rec.Dynamodb.NewImage), "OldImage": image(rec.Dynamodb.OldImage)},
	}
	for _, f := range filters {
		if matchPattern(f, doc) {
			return true
		}
	}
	return false
}

func matchPattern(pattern map[string]any, doc map[string]any) bool {
	for k, want := range pattern {
		got, ok := doc[k]
		if !ok {
			return false
		}
		switch w := want.(type) {
		case map[string]any:
			sub, ok := got.(map[string]any)
			if !ok || !matchPattern(w, sub) {
				return false
			}
		case []any:
			found := false
			for _, v := range w {
				if fmt.Sprint(v) == fmt.Sprint(got) {
					found = true
				}
			}
			if !found {
				return false
			}
		default:
			return false
		}
	}
	return true
}
