package wshandler_test

import (
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/testenv"
)

// TestMalformedRequestsAreAnswered sends each request a satellite waits on
// with a malformed field, through the message function, and checks the
// exact reply: whenever the frame carries, as a JSON string, the field the
// satellite matches replies on, it gets its answer under that field exactly
// as sent; otherwise nothing (docs/PROTOCOL.md, "Answers to malformed
// requests").
func TestMalformedRequestsAreAnswered(t *testing.T) {
	longHash := strings.Repeat("h", 201)
	longIntegrity := "sha512-" + strings.Repeat("A", 300)
	longRequestID := "req-" + strings.Repeat("r", 300)
	cases := []struct {
		name, body string
		want       string // the exact reply; "" for none
	}{
		// request_script_package_manifest: matched on lockfileHash.
		{"manifest: a lockfileHash that is not a lockfile hash",
			`{"type":"request_script_package_manifest","lockfileHash":"../../etc"}`,
			`{"type":"script_package_manifest","lockfileHash":"../../etc","entries":[]}`},
		{"manifest: an empty lockfileHash",
			`{"type":"request_script_package_manifest","lockfileHash":""}`,
			`{"type":"script_package_manifest","lockfileHash":"","entries":[]}`},
		{"manifest: an over-long lockfileHash",
			`{"type":"request_script_package_manifest","lockfileHash":"` + longHash + `"}`,
			`{"type":"script_package_manifest","lockfileHash":"` + longHash + `","entries":[]}`},
		{"manifest: a lockfileHash echoed as sent, escapes and all",
			`{"type":"request_script_package_manifest","lockfileHash":"lock-\ud800\u00e9 1"}`,
			`{"type":"script_package_manifest","lockfileHash":"lock-\ud800\u00e9 1","entries":[]}`},
		{"manifest: a lockfileHash whose answer does not fit one message once encoded",
			`{"type":"request_script_package_manifest","lockfileHash":"` + strings.Repeat("<", 30000) + `"}`, ""},
		{"manifest: a lockfileHash that is not a string",
			`{"type":"request_script_package_manifest","lockfileHash":7}`, ""},
		{"manifest: a null lockfileHash",
			`{"type":"request_script_package_manifest","lockfileHash":null}`, ""},
		{"manifest: no lockfileHash",
			`{"type":"request_script_package_manifest"}`, ""},

		// request_script_package_blob: matched on integrity.
		{"blob: an over-long integrity",
			`{"type":"request_script_package_blob","integrity":"` + longIntegrity + `"}`,
			`{"type":"script_package_blob","integrity":"` + longIntegrity + `","data":null}`},
		{"blob: an integrity that is not a string",
			`{"type":"request_script_package_blob","integrity":["sha512-x"]}`, ""},

		// request_run_secrets: matched on requestId.
		{"run secrets: no collectorId",
			`{"type":"request_run_secrets","requestId":"req-1","configId":"cfg-1","runId":"run-1"}`,
			`{"type":"run_secrets","requestId":"req-1","error":"invalid request_run_secrets frame: field \"collectorId\" is required"}`},
		{"run secrets: an over-long requestId",
			`{"type":"request_run_secrets","requestId":"` + longRequestID + `","configId":"cfg-1","collectorId":"col-1","runId":"run-1"}`,
			`{"type":"run_secrets","requestId":"` + longRequestID + `","error":"invalid request_run_secrets frame: field \"requestId\" is longer than 256 bytes"}`},
		{"run secrets: a requestId that is not a string",
			`{"type":"request_run_secrets","requestId":42,"configId":"cfg-1","collectorId":"col-1","runId":"run-1"}`, ""},

		// request_config_secrets: matched on requestId.
		{"config secrets: a configId that is not a string",
			`{"type":"request_config_secrets","requestId":"req-2","configId":{},"runId":"run-1"}`,
			`{"type":"config_secrets","requestId":"req-2","error":"invalid request_config_secrets frame: field \"configId\" must be a string"}`},
		{"config secrets: an empty requestId",
			`{"type":"request_config_secrets","requestId":"","configId":"cfg-1"}`,
			`{"type":"config_secrets","requestId":"","error":"invalid request_config_secrets frame: field \"runId\" is required"}`},

		// capability_secret_request: matched on requestId.
		{"capability secret: a payload that is not an object",
			`{"type":"capability_secret_request","requestId":"req-3","kind":"scrape","payload":"node-exporter"}`,
			`{"type":"capability_secret_response","requestId":"req-3","error":"invalid capability_secret_request frame: field \"payload\" must be an object"}`},
		{"capability secret: no requestId",
			`{"type":"capability_secret_request","kind":"scrape","payload":{"targetId":"t"}}`, ""},

		// telemetry_batch: matched on batchId (a string or a number);
		// answered as before this change, documented beside the others.
		{"telemetry: a kind that is not a name",
			`{"type":"telemetry_batch","batchId":7,"kind":"no spaces allowed","payload":[]}`,
			`{"type":"telemetry_ack","batchId":7,"accepted":0,"rejected":1,"retryable":false}`},
	}
	h := newHarness(t)
	tok := h.satellite("sat-answers")
	id := h.authenticate("sat-answers", tok)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.mgmt.Posts(id))
			h.send(testenv.Raw(t, id, tc.body))
			posts := h.mgmt.Posts(id)[before:]
			var got []string
			for _, p := range posts {
				got = append(got, string(p))
			}
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("replies %q, want none: the frame carries nothing the satellite could match an answer on", got)
			case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
				t.Errorf("replies %q, want exactly %s", got, tc.want)
			}
		})
	}
	if h.mgmt.Closed(id) {
		t.Errorf("a malformed request closed the connection")
	}
	if got := len(h.logLines("frame refused")); got != len(cases) {
		t.Errorf("%d refusals logged, want one per frame (%d)", got, len(cases))
	}
}

// TestMalformedRequestsBeforeAuthenticateAreDropped checks a malformed
// request on a connection that has not authenticated is dropped like any
// invalid frame (the original drops a frame it cannot parse before it
// looks at authentication): no answer, and the connection stays.
func TestMalformedRequestsBeforeAuthenticateAreDropped(t *testing.T) {
	h := newHarness(t)
	id := h.open()
	for _, body := range []string{
		`{"type":"request_script_package_manifest","lockfileHash":"../../etc"}`,
		`{"type":"request_script_package_blob","integrity":"` + strings.Repeat("A", 300) + `"}`,
		`{"type":"request_run_secrets","requestId":"req-1"}`,
	} {
		h.send(testenv.Raw(t, id, body))
	}
	if posts := h.mgmt.Posts(id); len(posts) != 0 || h.mgmt.Closed(id) {
		t.Errorf("%d replies (closed %v), want none and the connection kept", len(posts), h.mgmt.Closed(id))
	}
}
