package localaws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

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
