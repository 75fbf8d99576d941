package localaws

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// SQSServer is an SQS-compatible server on a real port: the AWS JSON 1.0
// protocol the current AWS SDKs speak (aws-sdk-go-v2, the JavaScript SDK
// v3), for standard queues. It keeps SQS's semantics that a producer and a
// consumer depend on: visibility timeouts, receive counts, redrive to a
// dead-letter queue after maxReceiveCount receives, retention, long
// polling, batch requests with per-entry outcomes, SQS's size and character
// limits, and the checksums the SDKs verify. Queues live in memory.
//
// Go modules that implement SQS were checked first: the one the module
// proxy serves (goaws v0.4.5) speaks only the Query protocol, which no
// current SDK sends, and miscounts receives and redrives.
type SQSServer struct {
	URL       string // http://127.0.0.1:port
	AccountID string
	Region    string
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time

	server *http.Server
	mu     sync.Mutex
	queues map[string]*sqsQueue // by name
	// wake is closed and replaced whenever a message is sent or made
	// visible, so long polls look again.
	wake chan struct{}
}

// SQS's limits.
const (
	sqsMaxMessageBytes   = 1 << 20 // 1 MiB
	sqsMaxBatchEntries   = 10
	sqsMaxReceive        = 10
	sqsMaxWaitSeconds    = 20
	sqsMaxVisibility     = 12 * time.Hour
	sqsDefaultRetention  = 4 * 24 * time.Hour
	sqsDefaultVisibility = 30 * time.Second
)

type sqsQueue struct {
	name, arn, url string
	created        time.Time
	visibility     time.Duration
	retention      time.Duration
	maxBytes       int
	wait           time.Duration
	delay          time.Duration
	// redrive names the dead-letter queue by ARN, as SQS does.
	deadLetterARN   string
	maxReceiveCount int
	redrivePolicy   string
	messages        []*sqsMessage
}

type sqsMessage struct {
	id, body, md5Body string
	attributes        map[string]sqsAttribute
	md5Attributes     string
	sent              time.Time
	visibleAt         time.Time
	receiveCount      int
	firstReceive      time.Time
	handle            string
}

type sqsAttribute struct {
	DataType    string `json:"DataType"`
	StringValue string `json:"StringValue,omitempty"`
	BinaryValue []byte `json:"BinaryValue,omitempty"`
}

// StartSQS serves SQS on addr ("127.0.0.1:0" for a free port).
func StartSQS(addr string) (*SQSServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("SQS server: %w", err)
	}
	s := &SQSServer{
		URL: "http://" + l.Addr().String(), AccountID: "123456789012", Region: Region,
		queues: map[string]*sqsQueue{}, wake: make(chan struct{}),
	}
	s.server = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("SQS server stopped: %v\n", err)
		}
	}()
	return s, nil
}

// Stop shuts the server down; long polls end at once.
func (s *SQSServer) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.server.Shutdown(ctx)
}

func (s *SQSServer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// QueueARN is the ARN of a queue of this server.
func (s *SQSServer) QueueARN(name string) string {
	return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", s.Region, s.AccountID, name)
}

// QueueURL is the URL of a queue of this server.
func (s *SQSServer) QueueURL(name string) string {
	return fmt.Sprintf("%s/%s/%s", s.URL, s.AccountID, name)
}

// sqsError is an error answer: its code (the JSON protocol's __type), the
// Query protocol code the SDKs also read, and whose fault it is.
type sqsError struct {
	status     int
	code       string
	queryCode  string
	message    string
	senderSide bool
}

func (e *sqsError) Error() string { return e.code + ": " + e.message }

func errInvalid(format string, args ...any) *sqsError {
	return &sqsError{http.StatusBadRequest, "InvalidParameterValue", "InvalidParameterValue", fmt.Sprintf(format, args...), true}
}

var (
	errNoQueue        = &sqsError{http.StatusBadRequest, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.", true}
	errBadHandle      = &sqsError{http.StatusBadRequest, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", "The input receipt handle is invalid.", true}
	errEmptyBatch     = &sqsError{http.StatusBadRequest, "EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one SendMessageBatchRequestEntry in the request.", true}
	errTooManyEntries = &sqsError{http.StatusBadRequest, "TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "Maximum number of entries per request are 10.", true}
	errDistinctIDs    = &sqsError{http.StatusBadRequest, "BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "Id values must be distinct.", true}
	errBatchTooLong   = &sqsError{http.StatusBadRequest, "BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", "Batch requests cannot be longer than 1048576 bytes.", true}
)

func (s *SQSServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "AmazonSQS.")
	if r.Method != http.MethodPost || !ok {
		writeSQSError(w, &sqsError{http.StatusBadRequest, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation",
			"this server speaks the AWS JSON 1.0 protocol (X-Amz-Target: AmazonSQS.<Operation>)", true})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		writeSQSError(w, errInvalid("cannot read the request"))
		return
	}
	var out any
	var serr *sqsError
	switch op {
	case "CreateQueue":
		out, serr = s.createQueue(body)
	case "GetQueueUrl":
		out, serr = s.getQueueURL(body)
	case "ListQueues":
		out, serr = s.listQueues(body)
	case "DeleteQueue":
		out, serr = s.deleteQueue(body)
	case "GetQueueAttributes":
		out, serr = s.getQueueAttributes(body)
	case "PurgeQueue":
		out, serr = s.purgeQueue(body)
	case "SendMessage":
		out, serr = s.sendMessage(body)
	case "SendMessageBatch":
		out, serr = s.sendMessageBatch(body)
	case "ReceiveMessage":
		out, serr = s.receiveMessage(r.Context(), body)
	case "DeleteMessage":
		out, serr = s.deleteMessage(body)
	case "DeleteMessageBatch":
		out, serr = s.deleteMessageBatch(body)
	case "ChangeMessageVisibility":
		out, serr = s.changeVisibility(body)
	default:
		serr = &sqsError{http.StatusBadRequest, "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", op + " is not supported by the local SQS server", true}
	}
	if serr != nil {
		writeSQSError(w, serr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Requestid", newSQSID())
	_ = json.NewEncoder(w).Encode(out)
}

func writeSQSError(w http.ResponseWriter, e *sqsError) {
	fault := "Sender"
	if !e.senderSide {
		fault = "Receiver"
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Query-Error", e.queryCode+";"+fault)
	w.Header().Set("X-Amzn-Requestid", newSQSID())
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + e.code, "message": e.message})
}

func newSQSID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func decode(body []byte, v any) *sqsError {
	if err := json.Unmarshal(body, v); err != nil {
		return errInvalid("the request body is not the operation's JSON: %v", err)
	}
	return nil
}

// onQueue runs fn with s.mu held on the queue a QueueUrl names.
func (s *SQSServer) onQueue(queueURL string, fn func(q *sqsQueue) (any, *sqsError)) (any, *sqsError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.queueOf(queueURL)
	if err != nil {
		return nil, err
	}
	return fn(q)
}

// queueOf finds the queue a QueueUrl names (by its last path segment, as
// SQS resolves it within the account). Call with s.mu held.
func (s *SQSServer) queueOf(queueURL string) (*sqsQueue, *sqsError) {
	name := queueURL[strings.LastIndexByte(queueURL, '/')+1:]
	q, ok := s.queues[name]
	if !ok {
		return nil, errNoQueue
	}
	return q, nil
}

// CreateQueue creates a queue with SQS's attribute names and string values
// (as CloudFormation's properties give them); an existing queue is kept.
func (s *SQSServer) CreateQueue(name string, attributes map[string]string) (string, error) {
	b, _ := json.Marshal(map[string]any{"QueueName": name, "Attributes": attributes})
	out, err := s.createQueue(b)
	if err != nil {
		return "", err
	}
	return out.(map[string]string)["QueueUrl"], nil
}

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

// CreateQueues creates every AWS::SQS::Queue of the template on the
// server, named by names (logical id -> queue name), with the template's
// visibility timeout, retention, wait, delay, size and redrive policy (its
// dead-letter target resolved to the local queue). Existing queues are
// kept.
func (s *SQSServer) CreateQueues(tpl *samtemplate.Template, names map[string]string) error {
	ids := tpl.ResourcesOfType("AWS::SQS::Queue")
	// Dead-letter queues first: a redrive policy names one by ARN.
	sort.SliceStable(ids, func(i, j int) bool {
		_, ri := tpl.Resources[ids[i]].Properties["RedrivePolicy"]
		_, rj := tpl.Resources[ids[j]].Properties["RedrivePolicy"]
		return !ri && rj
	})
	for _, id := range ids {
		name, ok := names[id]
		if !ok {
			return fmt.Errorf("no local name for queue %s", id)
		}
		attrs := map[string]string{}
		p := tpl.Resources[id].Properties
		for _, a := range []string{"VisibilityTimeout", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds", "DelaySeconds", "MaximumMessageSize"} {
			if v, ok := p[a]; ok {
				resolved, err := tpl.Resolve(v, nil)
				if err != nil {
					return fmt.Errorf("queue %s: %s: %w", id, a, err)
				}
				attrs[a] = resolved
			}
		}
		if rp, ok := p["RedrivePolicy"].(map[string]any); ok {
			target, attr, ok := samtemplate.GetAtt(rp["deadLetterTargetArn"])
			if !ok || attr != "Arn" || names[target] == "" {
				return fmt.Errorf("queue %s: dead-letter target %v is not a queue of the template", id, rp["deadLetterTargetArn"])
			}
			count, err := tpl.Resolve(rp["maxReceiveCount"], nil)
			if err != nil {
				return fmt.Errorf("queue %s: maxReceiveCount: %w", id, err)
			}
			b, _ := json.Marshal(map[string]any{"deadLetterTargetArn": s.QueueARN(names[target]), "maxReceiveCount": count})
			attrs["RedrivePolicy"] = string(b)
		}
		if _, err := s.CreateQueue(name, attrs); err != nil {
			return fmt.Errorf("queue %s: %w", id, err)
		}
	}
	return nil
}
