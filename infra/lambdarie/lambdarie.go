// Package lambdarie runs a built Lambda bootstrap under the Lambda Runtime
// Interface Emulator (aws-lambda-rie), the same runtime API `sam local
// invoke` gives it inside a container, and invokes it over the emulator's
// Invoke endpoint. One emulator serves one invocation at a time (a second
// concurrent one crashes it), so Invoke serialises calls.
package lambdarie

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// Path returns where `make tools` installs aws-lambda-rie.
func Path() (string, error) {
	if p := os.Getenv("AWS_LAMBDA_RIE"); p != "" {
		return p, nil
	}
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".tools", "bin", "aws-lambda-rie"), nil
}

// Options configures an emulator.
type Options struct {
	// RIE is the emulator binary; Path() when empty.
	RIE string
	// Bootstrap is the built function.
	Bootstrap string
	// Env is the function's whole environment: the emulator passes its own
	// environment through to the function, so nothing else is inherited.
	Env map[string]string
	// Timeout is the function timeout; 10 s when zero.
	Timeout time.Duration
	// Output receives the emulator's and the function's output.
	Output io.Writer
}

// Emulator is one running aws-lambda-rie with one function.
type Emulator struct {
	url      string
	cmd      *exec.Cmd
	done     chan error
	mu       sync.Mutex
	client   *http.Client
	stopOnce sync.Once
}

// Start launches the emulator on two free loopback ports and waits until it
// accepts invocations.
func Start(ctx context.Context, opts Options) (*Emulator, error) {
	if opts.RIE == "" {
		p, err := Path()
		if err != nil {
			return nil, err
		}
		opts.RIE = p
	}
	if _, err := os.Stat(opts.RIE); err != nil {
		return nil, fmt.Errorf("aws-lambda-rie is not installed at %s (run `make tools`): %w", opts.RIE, err)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	invokePort, err := localaws.FreePort()
	if err != nil {
		return nil, err
	}
	runtimePort, err := localaws.FreePort()
	if err != nil {
		return nil, err
	}
	bootstrap, err := filepath.Abs(opts.Bootstrap)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(opts.RIE,
		"--runtime-interface-emulator-address", "127.0.0.1:"+strconv.Itoa(invokePort),
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(runtimePort),
		bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(int(opts.Timeout/time.Second)),
	}
	for k, v := range opts.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if opts.Output != nil {
		cmd.Stdout, cmd.Stderr = opts.Output, opts.Output
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start aws-lambda-rie: %w", err)
	}
	e := &Emulator{
		url:    fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", invokePort),
		cmd:    cmd,
		done:   make(chan error, 1),
		client: &http.Client{Timeout: opts.Timeout + 5*time.Second},
	}
	go func() { e.done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", invokePort), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return e, nil
		}
		select {
		case exitErr := <-e.done:
			e.done <- exitErr
			return nil, fmt.Errorf("aws-lambda-rie exited at start: %v", exitErr)
		case <-ctx.Done():
			e.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			e.Stop()
			return nil, fmt.Errorf("aws-lambda-rie not listening on %d", invokePort)
		}
	}
}

// BaseURL is the emulator's Lambda Invoke API root; the function is named
// "function" there.
func (e *Emulator) BaseURL() string {
	base, _, _ := strings.Cut(e.url, "/2015-03-31/")
	return base
}

// FunctionError is a failed invocation: the handler returned an error or
// panicked (Type and Message from the runtime), or timed out.
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("function error %s: %s", e.Type, e.Message)
}

// Invoke runs the function once with payload and returns its response. A
// handler error is a *FunctionError.
func (e *Emulator) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &FunctionError{Type: "Invoke." + strconv.Itoa(resp.StatusCode), Message: string(body)}
	}
	var fe FunctionError
	if json.Unmarshal(body, &fe) == nil && fe.Type != "" {
		return nil, &fe
	}
	if !json.Valid(body) {
		// A timeout comes back as plain text.
		return nil, &FunctionError{Type: "Runtime.Unknown", Message: string(body)}
	}
	return body, nil
}

// Stop ends the emulator and its function.
func (e *Emulator) Stop() {
	e.stopOnce.Do(func() {
		_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		<-e.done
	})
}

var initDuration = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)

// InitDuration returns the init phase aws-lambda-rie reported in its output
// ("INIT REPORT(durationMs: ...)" at a function's first invocation): from
// starting the bootstrap to its first request for work, as Lambda measures
// a cold start's init. (The "Init Duration" of the REPORT line is not it:
// this emulator starts the runtime asynchronously and reports only the
// call.)
func InitDuration(output string) (time.Duration, bool) {
	m := initDuration.FindStringSubmatch(output)
	if m == nil {
		return 0, false
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ms * float64(time.Millisecond)), true
}

// MaxBootstrapBytes is the size budget of one function's bootstrap as `sam
// build` makes it (linux/arm64, stripped): 14 MiB for every function. The
// functions call S3, EventBridge, Secrets Manager, Lambda, SQS and the
// Management API through the AWS SDK's own service clients; each client
// package links its types, serializers and operation schemas, and every
// function links the packages (and runs the package initialisation) of
// the clients shared/app builds. The budget was 9 MiB (8 MiB for the
// functions on a satellite's path before that) while those calls went
// through a SigV4 client of the project's own. A cold start is rare
// beside a fleet's steady frames: the budget bounds growth, `make
// coldstart` measures what it costs (docs/COST.md, Cold start).
func MaxBootstrapBytes(function string) int64 {
	return 14 << 20
}

// Build runs `make build` in the repository at root for goarch into a new
// temporary directory (the caller removes it): the bootstraps `sam build`
// makes, one per functions/<dir>, at <dir>/<fn>/bootstrap.
func Build(root, goarch string) (string, error) {
	dir, err := os.MkdirTemp("", "checkstack-bootstraps-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("make", "-C", root, "build", "GOOS=linux", "GOARCH="+goarch, "BUILD_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("make build GOARCH=%s: %v\n%s", goarch, err, out)
	}
	return dir, nil
}

// Bootstraps lists the built functions in dir (the functions/<dir> names).
func Bootstraps(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var fns []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "bootstrap")); err == nil {
			fns = append(fns, e.Name())
		}
	}
	return fns, nil
}
