package testenv

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// JSONRequest is one decoded AWS JSON-protocol request (Secrets Manager,
// EventBridge): the X-Amz-Target operation and the body.
type JSONRequest struct {
	Target string
	Body   map[string]any
	Signed bool // carried a SigV4 Authorization header
}

// jsonService is a server for an AWS JSON 1.1 protocol service that decodes
// what the real SDK sends and answers with the shapes the service documents.
type jsonService struct {
	URL      string
	mu       sync.Mutex
	requests []JSONRequest
	answer   func(target string, body map[string]any) (status int, errorType string, response any)
}

func newJSONService(tb testing.TB, answer func(string, map[string]any) (int, string, any)) *jsonService {
	s := &jsonService{answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *jsonService) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.1") || json.Unmarshal(raw, &body) != nil {
		http.Error(w, "not an AWS JSON 1.1 request", http.StatusBadRequest)
		return
	}
	target := r.Header.Get("X-Amz-Target")
	s.mu.Lock()
	s.requests = append(s.requests, JSONRequest{Target: target, Body: body, Signed: strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")})
	s.mu.Unlock()
	status, errorType, response := s.answer(target, body)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if errorType != "" {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": errorType, "message": errorType})
		return
	}
	_ = json.NewEncoder(w).Encode(response)
}

// Requests returns the decoded requests so far.
func (s *jsonService) Requests() []JSONRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]JSONRequest(nil), s.requests...)
}

// SecretsManager answers BatchGetSecretValue from a map of secret id ->
// value, with the shapes Secrets Manager documents: each secret it cannot
// read is an entry of Errors, not a failed call.
type SecretsManager struct {
	*jsonService
	pageSize atomic.Int64
	mu       sync.Mutex
	secrets  map[string]string
}

// Put creates or rotates a secret.
func (sm *SecretsManager) Put(id, value string) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.secrets[id] = value
}

func (sm *SecretsManager) secret(id string) (string, bool) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	v, ok := sm.secrets[id]
	return v, ok
}

// Paginate makes each answer hold at most n secrets, with a NextToken for
// the rest, as Secrets Manager may; 0 answers all at once.
func (sm *SecretsManager) Paginate(n int) { sm.pageSize.Store(int64(n)) }

// NewSecretsManager starts a Secrets Manager server holding secrets. A call
// naming a secret whose value is "THROTTLE" answers ThrottlingException; a
// secret whose value is "BINARY" holds a SecretBinary and no SecretString.
func NewSecretsManager(tb testing.TB, secrets map[string]string) *SecretsManager {
	sm := &SecretsManager{secrets: map[string]string{}}
	for id, v := range secrets {
		sm.secrets[id] = v
	}
	sm.jsonService = newJSONService(tb, func(target string, body map[string]any) (int, string, any) {
		if target != "secretsmanager.BatchGetSecretValue" {
			return http.StatusBadRequest, "InvalidRequestException", nil
		}
		raw, _ := body["SecretIdList"].([]any)
		if len(raw) == 0 || len(raw) > 20 || body["Filters"] != nil {
			return http.StatusBadRequest, "InvalidParameterException", nil
		}
		start := 0
		if tok, ok := body["NextToken"].(string); ok {
			n, err := strconv.Atoi(tok)
			if err != nil || n <= 0 || n >= len(raw) {
				return http.StatusBadRequest, "InvalidNextTokenException", nil
			}
			start = n
		}
		end := len(raw)
		if n := int(sm.pageSize.Load()); n > 0 {
			end = min(end, start+n)
		}
		values, errs := []map[string]any{}, []map[string]any{}
		for _, r := range raw[start:end] {
			id, _ := r.(string)
			v, ok := sm.secret(id)
			switch {
			case !ok:
				errs = append(errs, map[string]any{"SecretId": id, "ErrorCode": "ResourceNotFoundException", "Message": "Secrets Manager can't find the specified secret."})
				continue
			case v == "THROTTLE":
				return http.StatusBadRequest, "ThrottlingException", nil
			}
			entry := map[string]any{
				"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + id + "-AbCdEf", "Name": id,
				"VersionId": "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1", "VersionStages": []string{"AWSCURRENT"},
				"CreatedDate": 1.523477145713e9,
			}
			if v == "BINARY" {
				entry["SecretBinary"] = "AAEC"
			} else {
				entry["SecretString"] = v
			}
			values = append(values, entry)
		}
		out := map[string]any{"SecretValues": values, "Errors": errs}
		if end < len(raw) {
			out["NextToken"] = strconv.Itoa(end)
		}
		return 0, "", out
	})
	return sm
}

// EventBridge accepts PutEvents; entries whose DetailType is in reject are
// answered as failed entries, the way EventBridge reports partial failure.
type EventBridge struct{ *jsonService }

// NewEventBridge starts an EventBridge server.
func NewEventBridge(tb testing.TB, reject ...string) *EventBridge {
	return &EventBridge{newJSONService(tb, func(target string, body map[string]any) (int, string, any) {
		if target != "AWSEvents.PutEvents" {
			return http.StatusBadRequest, "ValidationException", nil
		}
		entries, _ := body["Entries"].([]any)
		if len(entries) < 1 || len(entries) > 10 {
			// As EventBridge: a PutEvents request holds 1 to 10 entries.
			return http.StatusBadRequest, "ValidationException", nil
		}
		var results []map[string]string
		failed := 0
		for i, e := range entries {
			dt, _ := e.(map[string]any)["DetailType"].(string)
			rejected := false
			for _, r := range reject {
				rejected = rejected || r == dt
			}
			if rejected {
				failed++
				results = append(results, map[string]string{"ErrorCode": "InternalFailure", "ErrorMessage": "rejected by test"})
				continue
			}
			results = append(results, map[string]string{"EventId": "11710aed-b79e-4468-a20b-bb3c0c3b4860-" + string(rune('a'+i))})
		}
		return 0, "", map[string]any{"FailedEntryCount": failed, "Entries": results}
	})}
}
