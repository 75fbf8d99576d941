// Command coldstart measures what decides each function's cold start: the
// size of its bootstrap as `sam build` makes it (linux/arm64, stripped), and
// its init duration under aws-lambda-rie on this machine (built for this
// machine's architecture), over several cold starts each. It prints a
// Markdown table. It is a benchmark, not a test: init durations depend on
// the machine and what else runs on it.
//
// Each cold start runs the bootstrap with the environment template.yaml
// gives the function, invokes it once with its events/ fixture and reads
// the init phase aws-lambda-rie reports (bootstrap start to its first
// request for work). AWS calls go to a local server that refuses them at
// once, so no invocation waits on a network.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/checkstack/satellite-backend/infra/lambdarie"
	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/infra/testenv"
)

// fixtures is the event each function is invoked with.
var fixtures = map[string]string{
	"connect": "connect.json", "message": "message-heartbeat.json", "disconnect": "disconnect.json",
	"sweep": "sweep-schedule.json", "admin": "admin-create-satellite.json", "fanout": "fanout-task.json",
	"feed": "feed-results-stream.json",
}

func main() {
	runs := flag.Int("runs", 10, "cold starts per function")
	flag.Parse()
	if err := run(*runs); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

func run(runs int) error {
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		return err
	}
	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		return err
	}
	dirs, err := localstack.FunctionDirs(root)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "building linux/arm64 (sizes) and linux/"+runtime.GOARCH+" (init) ...")
	arm, err := lambdarie.Build(root, "arm64")
	if err != nil {
		return err
	}
	defer os.RemoveAll(arm)
	host, err := lambdarie.Build(root, runtime.GOARCH)
	if err != nil {
		return err
	}
	defer os.RemoveAll(host)

	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"__type":"com.amazon.coral.validate#ValidationException","message":"refused by the cold-start benchmark"}`)
	}))
	defer refuse.Close()

	logical := make([]string, 0, len(dirs))
	for fn := range dirs {
		logical = append(logical, fn)
	}
	slices.Sort(logical)
	fmt.Printf("| function | bootstrap linux/arm64 | init p50 | init max | runs |\n|---|---|---|---|---|\n")
	for _, fn := range logical {
		dir := dirs[fn]
		info, err := os.Stat(filepath.Join(arm, dir, "bootstrap"))
		if err != nil {
			return err
		}
		event, err := os.ReadFile(filepath.Join(root, "events", fixtures[dir]))
		if err != nil {
			return fmt.Errorf("%s: %w", fn, err)
		}
		env, err := environment(tpl, fn, refuse.URL)
		if err != nil {
			return err
		}
		var inits []time.Duration
		for range runs {
			d, err := coldStart(filepath.Join(host, dir, "bootstrap"), env, event)
			if err != nil {
				return fmt.Errorf("%s: %w", fn, err)
			}
			inits = append(inits, d)
		}
		slices.Sort(inits)
		fmt.Printf("| %s | %.2f MiB (%d bytes) | %.1f ms | %.1f ms | %d |\n", fn,
			float64(info.Size())/(1<<20), info.Size(), ms(inits[len(inits)/2]), ms(inits[len(inits)-1]), runs)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// environment is the function's environment from the template, with every
// AWS service at the refusing server.
func environment(tpl *samtemplate.Template, fn, aws string) (map[string]string, error) {
	refs := map[string]string{
		"AWS::Region": "eu-central-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
		"AWS::StackName": "coldstart", "AWS::URLSuffix": "amazonaws.com", "WebSocketApi": "abcdef1234",
		"ScriptPackagesBucket": "coldstart-packages",
		"SatellitesTable":      "coldstart-satellites", "ConnectionsTable": "coldstart-connections", "ResultsTable": "coldstart-results",
		"TelemetryTable": "coldstart-telemetry", "TelemetryBucket": "coldstart-telemetry", "JobsTable": "coldstart-jobs",
		"FanoutFunction": "coldstart-fanout", "ResultsFeedQueue": "https://sqs.eu-central-1.amazonaws.com/123456789012/coldstart-feed",
	}
	env, err := tpl.ResolveEnvironment(fn, refs)
	if err != nil {
		return nil, err
	}
	env["AWS_REGION"] = "eu-central-1"
	env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"] = "AKIDCOLDSTART", "secret", "token"
	env["AWS_ENDPOINT_URL"] = aws
	if _, ok := env["MANAGEMENT_ENDPOINT"]; ok {
		env["MANAGEMENT_ENDPOINT"] = aws
	}
	return env, nil
}

// coldStart starts a fresh emulator, invokes the function once and returns
// the init duration the emulator reported.
func coldStart(bootstrap string, env map[string]string, event []byte) (time.Duration, error) {
	var out testenv.SafeBuffer
	e, err := lambdarie.Start(context.Background(), lambdarie.Options{Bootstrap: bootstrap, Env: env, Output: &out, Timeout: 30 * time.Second})
	if err != nil {
		return 0, err
	}
	defer e.Stop()
	_, _ = e.Invoke(context.Background(), event) // the outcome does not matter, only the init
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if d, ok := lambdarie.InitDuration(out.String()); ok {
			return d, nil
		}
	}
	return 0, fmt.Errorf("no init duration reported:\n%s", out.String())
}
