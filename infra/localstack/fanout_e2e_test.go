package localstack_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/testenv"
)

func TestPublishReachesEverySocketAsynchronouslyInProcess(t *testing.T) {
	publishEndToEnd(t, localstack.InProcess, 40)
}

func TestPublishReachesEverySocketAsynchronouslyUnderRuntimeEmulator(t *testing.T) {
	publishEndToEnd(t, localstack.RIE, 6)
}

// publishEndToEnd connects n authenticated satellites over real sockets to
// the local stack, publishes a package set through the admin API and
// follows the fan-out job it starts: the admin function answers 202 at
// once, the fan-out function runs the job's segments from asynchronous
// invocations (every one delivered twice, as Lambda may), and every socket
// gets refresh_script_packages, each counted once.
func publishEndToEnd(t *testing.T, mode localstack.Mode, n int) {
	env := testenv.New(t)
	logs := &testenv.SafeBuffer{}
	s, err := localstack.Start(ctx, localstack.Options{
		DynamoDBEndpoint: env.DynamoDBEndpoint, TableNames: env.TableNames,
		S3Endpoint: env.S3Endpoint, Bucket: env.Bucket, TelemetryBucket: env.TelemetryBucket,
		Mode: mode, Log: logs, FunctionLog: logs,
		AsyncDuplicateRate: 1, AsyncRetryDelays: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("stack logs:\n%s", logs.String())
		}
	})

	// n satellites authenticate; each then records the refreshes it gets.
	type socket struct {
		mu        sync.Mutex
		refreshes []string
	}
	sockets := make([]*socket, n)
	var wg sync.WaitGroup
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	for i := range n {
		id := fmt.Sprintf("sat-fanout-%02d", i)
		tok := createSatellite(t, s, id)
		c := dial(t, satelliteURL(t, s))
		c.send(map[string]any{"type": "authenticate", "clientId": id, "token": tok})
		c.expect("authenticated")
		sk := &socket{}
		sockets[i] = sk
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, data, err := c.conn.Read(readCtx)
				if err != nil {
					return
				}
				var f map[string]any
				if json.Unmarshal(data, &f) == nil && f["type"] == "refresh_script_packages" {
					sk.mu.Lock()
					sk.refreshes = append(sk.refreshes, fmt.Sprint(f["lockfileHash"]))
					sk.mu.Unlock()
				}
			}
		}()
	}

	body, _ := json.Marshal(map[string]any{"packages": []any{map[string]any{"name": "probe", "version": "1.0.0", "data": base64.StdEncoding.EncodeToString([]byte("export const probe = 1;\n"))}}})
	resp, err := http.Post(s.AdminURL+"/script-packages", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var published struct {
		LockfileHash string         `json:"lockfileHash"`
		Refresh      map[string]any `json:"refresh"`
	}
	_ = json.Unmarshal(raw, &published)
	location := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || location != "/fan-outs/"+fmt.Sprint(published.Refresh["jobId"]) || published.Refresh["state"] != "running" {
		t.Fatalf("publish: %d, Location %q: %s", resp.StatusCode, location, raw)
	}

	var job map[string]any
	testenv.Eventually(t, "the refresh job done", func() bool {
		job = admin(t, s, "GET", location, nil)
		return job["state"] == "done"
	})
	if job["total"] != float64(n) || job["sent"] != float64(n) || job["gone"] != float64(0) || job["failed"] != float64(0) || job["remaining"] != float64(0) {
		t.Errorf("job = %v, want %d sent of %d, each counted once", job, n, n)
	}
	testenv.Eventually(t, "every socket refreshed", func() bool {
		for _, sk := range sockets {
			sk.mu.Lock()
			got := len(sk.refreshes)
			sk.mu.Unlock()
			if got == 0 {
				return false
			}
		}
		return true
	})
	for i, sk := range sockets {
		sk.mu.Lock()
		if sk.refreshes[0] != published.LockfileHash {
			t.Errorf("socket %d got refreshes %v, want %s", i, sk.refreshes, published.LockfileHash)
		}
		sk.mu.Unlock()
	}
	if st := s.Lambda.Stats(); st.Accepted < 4 || st.Duplicated != st.Accepted || st.Failed != 0 {
		t.Errorf("Lambda API: %+v, want the job's tasks accepted and each delivered twice", st)
	}
	stopReading()
	wg.Wait()
}
