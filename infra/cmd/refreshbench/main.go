// Command refreshbench measures a package refresh to many connected
// satellites through the local stack, over real sockets: it connects and
// authenticates -sockets satellites (10,000 by default), publishes a
// package set through the admin API, and measures from the publish request
// until every socket received refresh_script_packages, which the admin
// function hands to the fan-out function as an asynchronous job.
//
// The stack runs in a child process (this command, with -serve), so that
// the client sockets and the server sockets each have a process's file
// descriptors. The satellites are created directly in the registry with a
// bcrypt hash of cost 4 instead of the admin API's cost 10: creating and
// authenticating 10,000 satellites at cost 10 would cost some 27 minutes of
// CPU on this machine before the measurement starts, and the cost of a hash
// does not touch the fan-out. The scheduled sweep is off (the satellites do
// not heartbeat while they wait). It is a benchmark, not a test: figures
// depend on the machine.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/checkstack/satellite-backend/infra/localaws"
	"github.com/checkstack/satellite-backend/infra/localstack"
	"github.com/checkstack/satellite-backend/infra/simulator"
	"github.com/checkstack/satellite-backend/shared/dynamo"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

// stackInfo is what the child prints once its stack serves.
type stackInfo struct {
	URL, AdminURL, DynamoDBEndpoint string
	TableNames                      map[string]string
	Pid                             int
	// ProfileURL serves the child's pprof profiles.
	ProfileURL string
}

func main() {
	serve := flag.Bool("serve", false, "run the local stack and print where it serves (the benchmark starts itself with it)")
	sockets := flag.Int("sockets", 10000, "satellites connected when the package set is published")
	segments := flag.Int("segments", 4, "FANOUT_SEGMENTS: parallel fan-out workers")
	concurrency := flag.Int("concurrency", 16, "PUSH_CONCURRENCY: parallel posts per worker")
	connectConcurrency := flag.Int("connect-concurrency", 64, "satellites connecting and authenticating at once while the benchmark sets up")
	rounds := flag.Int("rounds", 3, "publications measured, one after the other, on the same sockets")
	functionLog := flag.String("function-log", "", "write the functions' logs to this file (the stack's child process)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the stack's process during the first publication to this file")
	flag.Parse()
	var err error
	if *serve {
		err = runStack(*segments, *concurrency, *functionLog)
	} else {
		err = run(*sockets, *segments, *concurrency, *connectConcurrency, *rounds, *functionLog, *cpuProfile)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "refreshbench:", err)
		os.Exit(1)
	}
}

// runStack is the child: the local stack, until its stdin closes.
func runStack(segments, concurrency int, functionLog string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := localstack.Options{
		// The satellites do not heartbeat while they wait: no sweep.
		ScheduleEvery: 24 * time.Hour,
		FunctionEnv:   map[string]string{"FANOUT_SEGMENTS": strconv.Itoa(segments), "PUSH_CONCURRENCY": strconv.Itoa(concurrency)},
	}
	if functionLog != "" {
		f, err := os.Create(functionLog)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.FunctionLog = f
	}
	s, err := localstack.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer s.Stop()
	profiles, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(profiles, nil) }() // net/http/pprof's handlers
	b, _ := json.Marshal(stackInfo{URL: simulator.SatelliteURL(s.CoreURL), AdminURL: s.AdminURL, DynamoDBEndpoint: s.DynamoDBEndpoint, TableNames: s.TableNames, Pid: os.Getpid(),
		ProfileURL: "http://" + profiles.Addr().String() + "/debug/pprof/profile"})
	fmt.Println(string(b))
	closed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
	case err := <-s.Failed():
		return err
	}
	return nil
}

// startStack starts the child and reads where it serves.
func startStack(segments, concurrency int, functionLog string) (*exec.Cmd, io.Closer, stackInfo, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, stackInfo{}, err
	}
	cmd := exec.Command(self, "-serve", "-segments", strconv.Itoa(segments), "-concurrency", strconv.Itoa(concurrency), "-function-log", functionLog)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, stackInfo{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, stackInfo{}, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, stackInfo{}, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, nil, stackInfo{}, fmt.Errorf("the stack did not start: %w", err)
	}
	var info stackInfo
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		_ = cmd.Process.Kill()
		return nil, nil, stackInfo{}, fmt.Errorf("the stack printed %q", line)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return cmd, stdin, info, nil
}

// sat is one benchmark satellite on its socket.
type sat struct {
	id, token string
	conn      *websocket.Conn
	// refreshed is when refresh_script_packages arrived (unix nanos; 0
	// until it did).
	refreshed atomic.Int64
}

func run(sockets, segments, concurrency, connectConcurrency, rounds int, functionLog, cpuProfile string) error {
	ctx := context.Background()
	fmt.Printf("starting the local stack (FANOUT_SEGMENTS=%d, PUSH_CONCURRENCY=%d) ...\n", segments, concurrency)
	cmd, stdin, info, err := startStack(segments, concurrency, functionLog)
	if err != nil {
		return err
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()

	sats := make([]*sat, sockets)
	started := time.Now()
	if err := seed(ctx, info, sats); err != nil {
		return err
	}
	fmt.Printf("created %d satellites (bcrypt cost %d) in %s\n", sockets, bcrypt.MinCost, time.Since(started).Round(time.Millisecond))

	started = time.Now()
	if err := connectAll(ctx, info.URL, sats, connectConcurrency); err != nil {
		return err
	}
	defer func() {
		for _, s := range sats {
			if s.conn != nil {
				_ = s.conn.CloseNow()
			}
		}
	}()
	fmt.Printf("connected and authenticated %d sockets in %s\n", sockets, time.Since(started).Round(time.Millisecond))

	fmt.Printf("\n| round | sockets | segments | posts in flight per segment | publish answered (202) ms | first refresh ms | p50 ms | p99 ms | all %d received ms | job done (its own clock) ms | sent | total | stack peak RSS MB |\n", sockets)
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for round := 1; round <= rounds; round++ {
		profile := ""
		if round == 1 {
			profile = cpuProfile
		}
		if err := measure(ctx, info, sats, round, segments, concurrency, profile); err != nil {
			return err
		}
	}
	return nil
}

// measure publishes a package set and waits until every socket received
// its refresh and the job says it is done.
func measure(ctx context.Context, info stackInfo, sats []*sat, round, segments, concurrency int, cpuProfile string) error {
	var waiting sync.WaitGroup
	for _, s := range sats {
		s.refreshed.Store(0)
		waiting.Add(1)
		go func() {
			defer waiting.Done()
			awaitRefresh(ctx, s)
		}()
	}
	profiled := make(chan error, 1)
	if cpuProfile != "" {
		go func() { profiled <- saveProfile(info.ProfileURL+"?seconds=15", cpuProfile) }()
	} else {
		profiled <- nil
	}

	body, _ := json.Marshal(map[string]any{"packages": []any{map[string]any{
		"name": "probe", "version": fmt.Sprintf("1.0.%d", round), "data": base64.StdEncoding.EncodeToString([]byte("export const probe = 1;\n")),
	}}})
	t0 := time.Now()
	resp, err := http.Post(info.AdminURL+"/script-packages", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	answered := time.Since(t0)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("publish answered %d: %s", resp.StatusCode, raw)
	}
	jobDone := make(chan map[string]any, 1)
	go followJob(info.AdminURL+resp.Header.Get("Location"), jobDone)

	all := make(chan struct{})
	go func() { waiting.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		return errors.New("not every socket received the refresh within 5 minutes")
	}
	var job map[string]any
	select {
	case job = <-jobDone:
	case <-time.After(time.Minute):
		return errors.New("the job did not report done within a minute of the last refresh")
	}
	if err := <-profiled; err != nil {
		return err
	}

	var arrivals []time.Duration
	for _, s := range sats {
		arrivals = append(arrivals, time.Unix(0, s.refreshed.Load()).Sub(t0))
	}
	sort.Slice(arrivals, func(i, j int) bool { return arrivals[i] < arrivals[j] })
	at := func(q float64) string {
		return ms(arrivals[min(len(arrivals)-1, int(q*float64(len(arrivals))))])
	}
	created, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(job["createdAt"]))
	finished, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(job["finishedAt"]))
	fmt.Printf("| %d | %d | %d | %d | %s | %s | %s | %s | %s | %s | %v | %v | %d |\n",
		round, len(sats), segments, concurrency, ms(answered), ms(arrivals[0]), at(0.5), at(0.99), ms(arrivals[len(arrivals)-1]),
		ms(finished.Sub(created)), job["sent"], job["total"], peakRSSMB(info.Pid))
	if job["sent"] != float64(len(sats)) || job["gone"] != float64(0) || job["failed"] != float64(0) {
		return fmt.Errorf("the job counted %v sent, %v gone, %v failed; want %d sent", job["sent"], job["gone"], job["failed"], len(sats))
	}
	return nil
}

// saveProfile fetches a CPU profile of the stack's process into file.
func saveProfile(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)) }

// seed creates the satellites in the registry, each with its own token
// hashed at bcrypt's minimum cost (see the package comment).
func seed(ctx context.Context, info stackInfo, sats []*sat) error {
	reg := dynamo.NewRegistry(localaws.DynamoDBClient(info.DynamoDBEndpoint), dynamo.Tables{
		Satellites: info.TableNames["SatellitesTable"], Connections: info.TableNames["ConnectionsTable"], Results: info.TableNames["ResultsTable"],
	})
	return parallel(len(sats), 32, func(i int) error {
		tok, err := token.New()
		if err != nil {
			return err
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(tok), bcrypt.MinCost)
		if err != nil {
			return err
		}
		id := fmt.Sprintf("sat-bench-%05d", i)
		sats[i] = &sat{id: id, token: tok}
		return reg.CreateSatellite(ctx, satellite.Satellite{ID: id, Name: id, Region: "bench", TokenHash: string(hash), CreatedAt: time.Now()})
	})
}

// connectAll opens and authenticates every satellite's socket.
func connectAll(ctx context.Context, url string, sats []*sat, concurrency int) error {
	var done atomic.Int64
	return parallel(len(sats), concurrency, func(i int) error {
		s := sats[i]
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			return fmt.Errorf("dial socket %d: %w", i, err)
		}
		s.conn = c
		frame, _ := json.Marshal(map[string]string{"type": "authenticate", "clientId": s.id, "token": s.token})
		if err := c.Write(ctx, websocket.MessageText, frame); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		_, reply, err := c.Read(rctx)
		if err != nil {
			return fmt.Errorf("authenticate %s: %w", s.id, err)
		}
		if !strings.Contains(string(reply), `"authenticated"`) {
			return fmt.Errorf("authenticate %s: %s", s.id, reply)
		}
		if n := done.Add(1); n%1000 == 0 {
			fmt.Printf("  %d authenticated\n", n)
		}
		return nil
	})
}

// awaitRefresh reads a socket until refresh_script_packages arrives.
func awaitRefresh(ctx context.Context, s *sat) {
	for {
		_, data, err := s.conn.Read(ctx)
		if err != nil {
			return
		}
		if bytes.Contains(data, []byte(`"refresh_script_packages"`)) {
			s.refreshed.Store(time.Now().UnixNano())
			return
		}
	}
}

// followJob reads the job until it is done.
func followJob(url string, done chan<- map[string]any) {
	for {
		resp, err := http.Get(url)
		if err == nil {
			var job map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&job)
			resp.Body.Close()
			if job["state"] == "done" {
				done <- job
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// parallel runs fn for 0..n-1 with at most limit at once and returns the
// first error.
func parallel(n, limit int, fn func(int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		slots = make(chan struct{}, limit)
	)
	for i := range n {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// peakRSSMB is a process's peak resident set in MiB.
func peakRSSMB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb >> 10
		}
	}
	return -1
}
