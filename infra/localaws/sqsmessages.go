package localaws

// SQSServer's message actions: sending (single and batch), receiving with
// long polls, visibility and redrive, deleting and changing visibility.

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// validBody applies SQS's message rules: not empty, at most the queue's
// size, and only the characters SQS allows (#x9, #xA, #xD, #x20 to
// #xD7FF, #xE000 to #xFFFD, #x10000 to #x10FFFF).
func validBody(q *sqsQueue, body string) *sqsError {
	if body == "" {
		return errInvalid("The request must contain the parameter MessageBody.")
	}
	if len(body) > q.maxBytes {
		return errInvalid("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", q.maxBytes)
	}
	for i, r := range body {
		ok := r == 0x9 || r == 0xA || r == 0xD || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
		if !ok || r == utf8.RuneError && !strings.HasPrefix(body[i:], "\uFFFD") {
			return &sqsError{http.StatusBadRequest, "InvalidMessageContents", "InvalidMessageContents",
				"Invalid binary character in the message body (only #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF are allowed)", true}
		}
	}
	return nil
}

type sendEntry struct {
	ID                string `json:"Id"`
	MessageBody       string
	DelaySeconds      *int
	MessageAttributes map[string]sqsAttribute
}

// enqueue adds a message; call with s.mu held.
func (s *SQSServer) enqueue(q *sqsQueue, e sendEntry) (map[string]string, *sqsError) {
	if err := validBody(q, e.MessageBody); err != nil {
		return nil, err
	}
	delay := q.delay
	if e.DelaySeconds != nil {
		if *e.DelaySeconds < 0 || *e.DelaySeconds > 900 {
			return nil, errInvalid("DelaySeconds %d: want 0 to 900", *e.DelaySeconds)
		}
		delay = time.Duration(*e.DelaySeconds) * time.Second
	}
	now := s.now()
	sum := md5.Sum([]byte(e.MessageBody))
	m := &sqsMessage{id: newSQSID(), body: e.MessageBody, md5Body: hex.EncodeToString(sum[:]), sent: now, visibleAt: now.Add(delay), attributes: e.MessageAttributes}
	out := map[string]string{"MessageId": m.id, "MD5OfMessageBody": m.md5Body}
	if len(e.MessageAttributes) > 0 {
		md5Attrs, err := attributesMD5(e.MessageAttributes)
		if err != nil {
			return nil, err
		}
		m.md5Attributes, out["MD5OfMessageAttributes"] = md5Attrs, md5Attrs
	}
	q.messages = append(q.messages, m)
	s.signal()
	return out, nil
}

// attributesMD5 is SQS's digest of message attributes: per attribute,
// sorted by name, the length-prefixed name, data type and value, with a
// transport byte (1 string or number, 2 binary).
func attributesMD5(attrs map[string]sqsAttribute) (string, *sqsError) {
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	h := md5.New()
	field := func(b []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, n := range names {
		a := attrs[n]
		field([]byte(n))
		field([]byte(a.DataType))
		switch {
		case strings.HasPrefix(a.DataType, "String"), strings.HasPrefix(a.DataType, "Number"):
			h.Write([]byte{1})
			field([]byte(a.StringValue))
		case strings.HasPrefix(a.DataType, "Binary"):
			h.Write([]byte{2})
			field(a.BinaryValue)
		default:
			return "", errInvalid("message attribute %s has data type %q", n, a.DataType)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// signal wakes long polls; call with s.mu held.
func (s *SQSServer) signal() {
	close(s.wake)
	s.wake = make(chan struct{})
}

func (s *SQSServer) sendMessage(body []byte) (any, *sqsError) {
	var in struct {
		QueueUrl string
		sendEntry
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return s.onQueue(in.QueueUrl, func(q *sqsQueue) (any, *sqsError) { return s.enqueue(q, in.sendEntry) })
}

func (s *SQSServer) sendMessageBatch(body []byte) (any, *sqsError) {
	var in struct {
		QueueUrl string
		Entries  []sendEntry
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Entries) == 0 {
		return nil, errEmptyBatch
	}
	if len(in.Entries) > sqsMaxBatchEntries {
		return nil, errTooManyEntries
	}
	ids, total := map[string]bool{}, 0
	for _, e := range in.Entries {
		if ids[e.ID] {
			return nil, errDistinctIDs
		}
		ids[e.ID] = true
		total += len(e.MessageBody)
	}
	if total > sqsMaxMessageBytes {
		return nil, errBatchTooLong
	}
	return s.onQueue(in.QueueUrl, func(q *sqsQueue) (any, *sqsError) {
		successful, failed := []map[string]any{}, []map[string]any{}
		for _, e := range in.Entries {
			out, err := s.enqueue(q, e)
			if err != nil {
				failed = append(failed, map[string]any{"Id": e.ID, "SenderFault": err.senderSide, "Code": err.code, "Message": err.message})
				continue
			}
			entry := map[string]any{"Id": e.ID}
			for k, v := range out {
				entry[k] = v
			}
			successful = append(successful, entry)
		}
		return map[string]any{"Successful": successful, "Failed": failed}, nil
	})
}

// expire drops messages past the queue's retention, counted from when
// they were first sent; call with s.mu held.
func (s *SQSServer) expire(q *sqsQueue, now time.Time) {
	kept := q.messages[:0]
	for _, m := range q.messages {
		if now.Sub(m.sent) < q.retention {
			kept = append(kept, m)
		}
	}
	q.messages = kept
}

func (s *SQSServer) receiveMessage(ctx context.Context, body []byte) (any, *sqsError) {
	var in struct {
		QueueUrl                    string
		MaxNumberOfMessages         *int
		WaitTimeSeconds             *int
		VisibilityTimeout           *int
		AttributeNames              []string
		MessageSystemAttributeNames []string
		MessageAttributeNames       []string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	max := 1
	if in.MaxNumberOfMessages != nil {
		max = *in.MaxNumberOfMessages
		if max < 1 || max > sqsMaxReceive {
			return nil, errInvalid("Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", max)
		}
	}
	s.mu.Lock()
	q, err := s.queueOf(in.QueueUrl)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	wait, visibility := q.wait, q.visibility
	s.mu.Unlock()
	if in.WaitTimeSeconds != nil {
		if *in.WaitTimeSeconds < 0 || *in.WaitTimeSeconds > sqsMaxWaitSeconds {
			return nil, errInvalid("Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", *in.WaitTimeSeconds)
		}
		wait = time.Duration(*in.WaitTimeSeconds) * time.Second
	}
	if in.VisibilityTimeout != nil {
		if *in.VisibilityTimeout < 0 || time.Duration(*in.VisibilityTimeout)*time.Second > sqsMaxVisibility {
			return nil, errInvalid("Value %d for parameter VisibilityTimeout is invalid.", *in.VisibilityTimeout)
		}
		visibility = time.Duration(*in.VisibilityTimeout) * time.Second
	}
	names := append(append([]string(nil), in.AttributeNames...), in.MessageSystemAttributeNames...)
	deadline := time.Now().Add(wait)
	for {
		s.mu.Lock()
		q, err := s.queueOf(in.QueueUrl)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		msgs := s.take(q, max, visibility, names, in.MessageAttributeNames)
		wake := s.wake
		s.mu.Unlock()
		remaining := time.Until(deadline)
		if len(msgs) > 0 || remaining <= 0 {
			return map[string]any{"Messages": msgs}, nil
		}
		// A message becomes visible again without a send: look again at
		// least every 100 ms.
		select {
		case <-ctx.Done():
			return map[string]any{"Messages": msgs}, nil
		case <-wake:
		case <-time.After(min(remaining, 100*time.Millisecond)):
		}
	}
}

// take receives up to max visible messages: each gets a new receipt
// handle, its receive count goes up, and it is hidden for visibility. A
// message already received maxReceiveCount times moves to the dead-letter
// queue instead, as SQS's redrive does. Call with s.mu held.
func (s *SQSServer) take(q *sqsQueue, max int, visibility time.Duration, names, attributeNames []string) []map[string]any {
	now := s.now()
	s.expire(q, now)
	var dead *sqsQueue
	if q.deadLetterARN != "" {
		for _, c := range s.queues {
			if c.arn == q.deadLetterARN {
				dead = c
			}
		}
	}
	out := []map[string]any{}
	kept := q.messages[:0]
	for _, m := range q.messages {
		switch {
		case len(out) >= max || m.visibleAt.After(now):
			kept = append(kept, m)
			continue
		case dead != nil && m.receiveCount >= q.maxReceiveCount:
			m.visibleAt = now
			dead.messages = append(dead.messages, m)
			continue
		}
		m.receiveCount++
		if m.firstReceive.IsZero() {
			m.firstReceive = now
		}
		m.visibleAt = now.Add(visibility)
		m.handle = base64.RawURLEncoding.EncodeToString([]byte(q.name + "\x00" + m.id + "\x00" + newSQSID()))
		msg := map[string]any{"MessageId": m.id, "ReceiptHandle": m.handle, "MD5OfBody": m.md5Body, "Body": m.body}
		if attrs := systemAttributes(m, names); len(attrs) > 0 {
			msg["Attributes"] = attrs
		}
		if len(attributeNames) > 0 && len(m.attributes) > 0 {
			msg["MessageAttributes"], msg["MD5OfMessageAttributes"] = m.attributes, m.md5Attributes
		}
		out = append(out, msg)
		kept = append(kept, m)
	}
	q.messages = kept
	return out
}

func systemAttributes(m *sqsMessage, names []string) map[string]string {
	all := map[string]string{
		"ApproximateReceiveCount":          strconv.Itoa(m.receiveCount),
		"SentTimestamp":                    strconv.FormatInt(m.sent.UnixMilli(), 10),
		"ApproximateFirstReceiveTimestamp": strconv.FormatInt(m.firstReceive.UnixMilli(), 10),
		"SenderId":                         "AIDALOCALSENDER",
	}
	out := map[string]string{}
	for _, n := range names {
		if n == "All" {
			return all
		}
		if v, ok := all[n]; ok {
			out[n] = v
		}
	}
	return out
}

// message finds the message a receipt handle names: only the latest
// handle of a message is good, as in SQS. Call with s.mu held.
func (s *SQSServer) message(q *sqsQueue, handle string) (int, *sqsError) {
	for i, m := range q.messages {
		if m.handle != "" && m.handle == handle {
			return i, nil
		}
	}
	if b, err := base64.RawURLEncoding.DecodeString(handle); err == nil && strings.HasPrefix(string(b), q.name+"\x00") {
		// A handle this queue issued for a message deleted since (or
		// received again): SQS accepts the delete and does nothing.
		return -1, nil
	}
	return -1, errBadHandle
}

func (s *SQSServer) deleteMessage(body []byte) (any, *sqsError) {
	var in struct{ QueueUrl, ReceiptHandle string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return s.onQueue(in.QueueUrl, func(q *sqsQueue) (any, *sqsError) {
		i, err := s.message(q, in.ReceiptHandle)
		if err != nil {
			return nil, err
		}
		if i >= 0 {
			q.messages = append(q.messages[:i], q.messages[i+1:]...)
		}
		return struct{}{}, nil
	})
}

func (s *SQSServer) deleteMessageBatch(body []byte) (any, *sqsError) {
	var in struct {
		QueueUrl string
		Entries  []struct {
			ID            string `json:"Id"`
			ReceiptHandle string
		}
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Entries) == 0 {
		return nil, errEmptyBatch
	}
	if len(in.Entries) > sqsMaxBatchEntries {
		return nil, errTooManyEntries
	}
	return s.onQueue(in.QueueUrl, func(q *sqsQueue) (any, *sqsError) {
		successful, failed := []map[string]any{}, []map[string]any{}
		for _, e := range in.Entries {
			i, err := s.message(q, e.ReceiptHandle)
			if err != nil {
				failed = append(failed, map[string]any{"Id": e.ID, "SenderFault": true, "Code": err.code, "Message": err.message})
				continue
			}
			if i >= 0 {
				q.messages = append(q.messages[:i], q.messages[i+1:]...)
			}
			successful = append(successful, map[string]any{"Id": e.ID})
		}
		return map[string]any{"Successful": successful, "Failed": failed}, nil
	})
}

func (s *SQSServer) changeVisibility(body []byte) (any, *sqsError) {
	var in struct {
		QueueUrl, ReceiptHandle string
		VisibilityTimeout       int
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.VisibilityTimeout < 0 || time.Duration(in.VisibilityTimeout)*time.Second > sqsMaxVisibility {
		return nil, errInvalid("Value %d for parameter VisibilityTimeout is invalid.", in.VisibilityTimeout)
	}
	return s.onQueue(in.QueueUrl, func(q *sqsQueue) (any, *sqsError) {
		i, err := s.message(q, in.ReceiptHandle)
		if err != nil {
			return nil, err
		}
		if i < 0 {
			return nil, &sqsError{http.StatusBadRequest, "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", "The message referred to isn't in flight.", true}
		}
		q.messages[i].visibleAt = s.now().Add(time.Duration(in.VisibilityTimeout) * time.Second)
		s.signal()
		return struct{}{}, nil
	})
}
