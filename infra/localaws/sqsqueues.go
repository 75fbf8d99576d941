package localaws

// SQSServer's queue actions: CreateQueue, GetQueueUrl, ListQueues,
// DeleteQueue, PurgeQueue and GetQueueAttributes.

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

func (s *SQSServer) createQueue(body []byte) (any, *sqsError) {
	var in struct {
		QueueName  string
		Attributes map[string]string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.QueueName == "" || len(in.QueueName) > 80 || strings.HasSuffix(in.QueueName, ".fifo") {
		return nil, errInvalid("QueueName %q: 1 to 80 characters; FIFO queues are not supported locally", in.QueueName)
	}
	q := &sqsQueue{
		name: in.QueueName, arn: s.QueueARN(in.QueueName), url: s.QueueURL(in.QueueName), created: s.now(),
		visibility: sqsDefaultVisibility, retention: sqsDefaultRetention, maxBytes: sqsMaxMessageBytes,
	}
	seconds := func(name string, lo, hi int) (time.Duration, *sqsError) {
		n, err := strconv.Atoi(in.Attributes[name])
		if err != nil || n < lo || n > hi {
			return 0, errInvalid("attribute %s %q: want %d to %d", name, in.Attributes[name], lo, hi)
		}
		return time.Duration(n) * time.Second, nil
	}
	for name, v := range in.Attributes {
		var err *sqsError
		switch name {
		case "VisibilityTimeout":
			q.visibility, err = seconds(name, 0, int(sqsMaxVisibility/time.Second))
		case "MessageRetentionPeriod":
			q.retention, err = seconds(name, 60, 1209600)
		case "ReceiveMessageWaitTimeSeconds":
			q.wait, err = seconds(name, 0, sqsMaxWaitSeconds)
		case "DelaySeconds":
			q.delay, err = seconds(name, 0, 900)
		case "MaximumMessageSize":
			var d time.Duration
			d, err = seconds(name, 1024, sqsMaxMessageBytes)
			q.maxBytes = int(d / time.Second)
		case "RedrivePolicy":
			var p struct {
				DeadLetterTargetArn string `json:"deadLetterTargetArn"`
				MaxReceiveCount     any    `json:"maxReceiveCount"`
			}
			if json.Unmarshal([]byte(v), &p) != nil || p.DeadLetterTargetArn == "" {
				return nil, errInvalid("RedrivePolicy %q: want {\"deadLetterTargetArn\", \"maxReceiveCount\"}", v)
			}
			n, convErr := strconv.Atoi(fmt.Sprint(p.MaxReceiveCount))
			if convErr != nil || n < 1 || n > 1000 {
				return nil, errInvalid("RedrivePolicy maxReceiveCount %v: want 1 to 1000", p.MaxReceiveCount)
			}
			q.deadLetterARN, q.maxReceiveCount, q.redrivePolicy = p.DeadLetterTargetArn, n, v
		case "SqsManagedSseEnabled", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "Policy", "RedriveAllowPolicy":
			// Encryption and access policies do not change what a client sees.
		default:
			return nil, errInvalid("attribute %s is not supported by the local SQS server", name)
		}
		if err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if existing, ok := s.queues[q.name]; ok {
		return map[string]string{"QueueUrl": existing.url}, nil
	}
	s.queues[q.name] = q
	return map[string]string{"QueueUrl": q.url}, nil
}

func (s *SQSServer) getQueueURL(body []byte) (any, *sqsError) {
	var in struct{ QueueName string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queues[in.QueueName]
	if !ok {
		return nil, errNoQueue
	}
	return map[string]string{"QueueUrl": q.url}, nil
}

func (s *SQSServer) listQueues(body []byte) (any, *sqsError) {
	var in struct{ QueueNamePrefix string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	urls := []string{}
	for name, q := range s.queues {
		if strings.HasPrefix(name, in.QueueNamePrefix) {
			urls = append(urls, q.url)
		}
	}
	sort.Strings(urls)
	return map[string][]string{"QueueUrls": urls}, nil
}

func (s *SQSServer) deleteQueue(body []byte) (any, *sqsError) {
	var in struct{ QueueUrl string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return s.onQueue(in.QueueUrl, func(q *sqsQueue) (any, *sqsError) {
		delete(s.queues, q.name)
		return struct{}{}, nil
	})
}

func (s *SQSServer) purgeQueue(body []byte) (any, *sqsError) {
	var in struct{ QueueUrl string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return s.onQueue(in.QueueUrl, func(q *sqsQueue) (any, *sqsError) {
		q.messages = nil
		return struct{}{}, nil
	})
}

func (s *SQSServer) getQueueAttributes(body []byte) (any, *sqsError) {
	var in struct {
		QueueUrl       string
		AttributeNames []string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return s.onQueue(in.QueueUrl, func(q *sqsQueue) (any, *sqsError) {
		now := s.now()
		s.expire(q, now)
		visible, invisible := 0, 0
		for _, m := range q.messages {
			if m.visibleAt.After(now) {
				invisible++
			} else {
				visible++
			}
		}
		all := map[string]string{
			"QueueArn":                              q.arn,
			"ApproximateNumberOfMessages":           strconv.Itoa(visible),
			"ApproximateNumberOfMessagesNotVisible": strconv.Itoa(invisible),
			"ApproximateNumberOfMessagesDelayed":    "0",
			"VisibilityTimeout":                     strconv.Itoa(int(q.visibility / time.Second)),
			"MessageRetentionPeriod":                strconv.Itoa(int(q.retention / time.Second)),
			"ReceiveMessageWaitTimeSeconds":         strconv.Itoa(int(q.wait / time.Second)),
			"DelaySeconds":                          strconv.Itoa(int(q.delay / time.Second)),
			"MaximumMessageSize":                    strconv.Itoa(q.maxBytes),
			"CreatedTimestamp":                      strconv.FormatInt(q.created.Unix(), 10),
		}
		if q.redrivePolicy != "" {
			all["RedrivePolicy"] = q.redrivePolicy
		}
		out := map[string]string{}
		for _, name := range in.AttributeNames {
			if name == "All" {
				out = all
				break
			}
			if v, ok := all[name]; ok {
				out[name] = v
			}
		}
		return map[string]any{"Attributes": out}, nil
	})
}
