package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/infra/simulator"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// TestMakeDev runs `make dev` as a developer would, reads the banner,
// connects the simulator with the credentials it prints, then stops it with
// Ctrl-C (SIGINT to the process group) and checks nothing is left behind.
// makeDev is `make dev` running on a free port.
type makeDev struct {
	cmd    *exec.Cmd
	addr   string
	stderr *strings.Builder
	exited chan error
	// banner is the banner's text; lines the output after it.
	banner string
	lines  <-chan string
}

func startMakeDev(t *testing.T) *makeDev {
	t.Helper()
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	port, err := localaws.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	d := &makeDev{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), stderr: &strings.Builder{}, exited: make(chan error, 1)}
	d.cmd = exec.Command("make", "-C", root, "dev", "DEV_ADDR="+d.addr, "DEV_FLAGS=-quiet")
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL) })
	d.banner, d.lines = readBanner(t, stdout, d.exited)
	return d
}

// TestMakeDev runs `make dev` as a developer would, reads the banner,
// connects the simulator with the credentials it prints, then stops it with
// Ctrl-C (SIGINT to the process group) and checks nothing is left behind.
func TestMakeDev(t *testing.T) {
	dev := startMakeDev(t)
	cmd, addr, stderr, exited := dev.cmd, dev.addr, dev.stderr, dev.exited
	banner, rest := dev.banner, dev.lines
	lines := map[string]string{}
	for _, key := range []string{"WebSocket URL", "@connections URL", "DynamoDB Local", "Secrets file", "Event log", "clientId", "token"} {
		m := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(key) + `\s+(\S+)`).FindStringSubmatch(banner)
		if m == nil {
			t.Fatalf("banner has no %s:\n%s", key, banner)
		}
		lines[key] = m[1]
	}
	if want := "ws://" + addr + "/prod"; lines["WebSocket URL"] != want {
		t.Errorf("WebSocket URL %s, want %s", lines["WebSocket URL"], want)
	}
	// What an operator gives a satellite: its core URL, nothing else.
	m := regexp.MustCompile(`(?m)^Core URL for satellites: (\S+)$`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner has no core URL:\n%s", banner)
	}
	coreURL := m[1]
	if want := "http://" + addr; coreURL != want {
		t.Errorf("core URL %s, want %s", coreURL, want)
	}
	if want := "go run ./infra/cmd/satsim -core-url " + coreURL + " -client-id " + lines["clientId"] + " -token " + lines["token"]; !strings.Contains(banner, want) {
		t.Errorf("banner does not give the simulator command %q", want)
	}
	if _, err := os.Stat(lines["Secrets file"]); err != nil {
		t.Errorf("secrets file: %v", err)
	}

	sim := simulator.New(simulator.Config{CoreURL: coreURL, ClientID: lines["clientId"], Token: lines["token"], HeartbeatInterval: 200 * time.Millisecond})
	ctx, stop := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for st := sim.State(); !(st.Authenticated && st.SyncStatus == satellite.SyncReady && st.SecretsReceived["col-demo-api"] == 1 && st.ResultsSent > 0); st = sim.State() {
		if time.Now().After(deadline) {
			t.Fatalf("simulator state %+v; devstack stderr:\n%s", st, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	<-simDone
	// The disconnect shows up as a printed lifecycle event.
	if !waitForLine(rest, "EVENT satellite.disconnected sat-demo", 30*time.Second) {
		t.Errorf("no disconnected event printed")
	}

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("make dev did not stop on Ctrl-C; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "devstack: stopped") {
		t.Errorf("no clean stop; stderr:\n%s", stderr.String())
	}
	// Nothing it started is left: the gateway's and DynamoDB Local's ports
	// are closed, and the temporary state is gone.
	u, _ := url.Parse(lines["DynamoDB Local"])
	for _, hostport := range []string{addr, u.Host} {
		if c, err := net.DialTimeout("tcp", hostport, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Ctrl-C", hostport)
		}
	}
	if _, err := os.Stat(lines["Secrets file"]); !os.IsNotExist(err) {
		t.Errorf("temporary state left behind: %v", err)
	}
}

// readBanner reads stdout up to "Press Ctrl-C to stop." and hands back the
// rest of the stream as lines.
func readBanner(t *testing.T, stdout io.Reader, exited <-chan error) (string, <-chan string) {
	t.Helper()
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var banner strings.Builder
	timeout := time.After(3 * time.Minute)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("make dev ended before its banner:\n%s", banner.String())
			}
			banner.WriteString(line + "\n")
			if strings.Contains(line, "Press Ctrl-C to stop.") {
				return banner.String(), lines
			}
		case err := <-exited:
			t.Fatalf("make dev exited (%v) before its banner:\n%s", err, banner.String())
		case <-timeout:
			t.Fatalf("no banner from make dev:\n%s", banner.String())
		}
	}
}

func waitForLine(lines <-chan string, prefix string, within time.Duration) bool {
	timeout := time.After(within)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return false
			}
			if strings.HasPrefix(line, prefix) {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

// TestMakeDevStopsWhenDynamoDBLocalDies kills DynamoDB Local under a running
// `make dev`: the stack says so and exits non-zero instead of answering
// "Internal server error" to every frame from then on.
func TestMakeDevStopsWhenDynamoDBLocalDies(t *testing.T) {
	dev := startMakeDev(t)
	m := regexp.MustCompile(`(?m)^\s+DynamoDB Local\s+http://127\.0\.0\.1:(\d+)`).FindStringSubmatch(dev.banner)
	if m == nil {
		t.Fatalf("no DynamoDB Local in the banner:\n%s", dev.banner)
	}
	pid := javaListeningOn(t, m[1])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-dev.exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("make dev exited with %v, want a failure status", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("make dev still runs after DynamoDB Local died; stderr:\n%s", dev.stderr.String())
	}
	if out := dev.stderr.String(); !strings.Contains(out, "FAILED: DynamoDB Local") || !strings.Contains(out, "exited unexpectedly") {
		t.Errorf("stderr does not say DynamoDB Local died:\n%s", out)
	}
}

// javaListeningOn finds the DynamoDB Local process started with -port port.
func javaListeningOn(t *testing.T, port string) int {
	t.Helper()
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		for i := range args {
			if args[i] == "-port" && i+1 < len(args) && args[i+1] == port && strings.Contains(string(cmdline), "DynamoDBLocal.jar") {
				return pid
			}
		}
	}
	t.Fatalf("no DynamoDB Local process with -port %s", port)
	return 0
}
