// Command satsim runs simulated Checkstack satellites against a backend: one
// with -client-id and -token, or -n of them from a credentials file, for
// load. Each speaks the wire protocol like a real satellite and logs what it
// does in plain lines.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/checkstack/satellite-backend/infra/simulator"
)

// Credential is one line of a credentials file: {"clientId": ..., "token": ...}.
type Credential struct {
	ClientID string `json:"clientId"`
	Token    string `json:"token"`
}

func main() {
	fs := flag.NewFlagSet("satsim", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage:
  satsim -core-url http://127.0.0.1:8765 -client-id ID -token csat_...
  satsim -core-url https://satellites.example.com -credentials creds.jsonl -n 50
  satsim -url ws://127.0.0.1:8765/prod -client-id ID -token csat_...

A satellite is configured with its core URL and opens <core URL>/api/ws/satellite
(http becomes ws, https becomes wss), as -core-url does; -url dials a WebSocket
URL as it is (the API's stage, bypassing the front).

Runs simulated satellites until interrupted (Ctrl-C). A satellite whose
credentials are refused stops; with one satellite the exit code is then 1.
A credentials file holds one JSON object per line: {"clientId": "...", "token": "..."}.

Flags:
`)
		fs.PrintDefaults()
	}
	coreURL := fs.String("core-url", "", "core URL a satellite is configured with (the stack's SatelliteCoreURL, or http://127.0.0.1:8765 locally)")
	url := fs.String("url", "", "WebSocket URL to dial as it is instead (wss://.../stage or ws://127.0.0.1:port/stage)")
	clientID := fs.String("client-id", "", "satellite id")
	token := fs.String("token", "", "satellite token (csat_...)")
	credentials := fs.String("credentials", "", "file of credentials, one JSON object per line")
	n := fs.Int("n", 0, "run the first n satellites of -credentials (0: all)")
	heartbeat := fs.Duration("heartbeat", 15*time.Second, "heartbeat interval")
	results := fs.Duration("result-interval", 0, "report results this often instead of each assignment's intervalSeconds")
	version := fs.String("version", "sim-1.0.0", "agent version reported in heartbeats")
	capabilities := fs.String("capabilities", strings.Join(simulator.DefaultCapabilities, ","), "capabilities advertised in authenticate and heartbeats (comma-separated; empty: none)")
	telemetry := fs.Duration("telemetry-interval", 15*time.Second, "send a logstream telemetry batch this often (0: none); at most 4 wait for their ack")
	quiet := fs.Bool("quiet", false, "log only errors and a summary")
	_ = fs.Parse(os.Args[1:])

	creds, err := loadCredentials(*clientID, *token, *credentials, *n)
	if err == nil && (*url == "") == (*coreURL == "") {
		err = errors.New("give either -core-url or -url")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "satsim:", err)
		fs.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var out io.Writer = os.Stdout
	if *quiet {
		out = io.Discard
	}
	log := &lockedWriter{w: out}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		refused int
		sats    []*simulator.Satellite
	)
	caps := []string{}
	for _, c := range strings.Split(*capabilities, ",") {
		if c = strings.TrimSpace(c); c != "" {
			caps = append(caps, c)
		}
	}
	for _, c := range creds {
		sat := simulator.New(simulator.Config{
			CoreURL: *coreURL, URL: *url, ClientID: c.ClientID, Token: c.Token, Version: *version,
			HeartbeatInterval: *heartbeat, ResultInterval: *results, Log: log,
			Capabilities: caps, TelemetryInterval: *telemetry,
		})
		sats = append(sats, sat)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sat.Run(ctx); errors.Is(err, simulator.ErrRefused) {
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sent, items := 0, 0
	for _, s := range sats {
		st := s.State()
		sent += st.ResultsSent
		items += st.TelemetryAccepted
	}
	fmt.Fprintf(os.Stderr, "satsim: %d satellite(s), %d result(s) sent, %d telemetry item(s) accepted, %d refused\n", len(sats), sent, items, refused)
	if refused > 0 && len(sats) == 1 {
		os.Exit(1)
	}
}

func loadCredentials(clientID, token, file string, n int) ([]Credential, error) {
	if file == "" {
		if clientID == "" || token == "" {
			return nil, errors.New("give -client-id and -token, or -credentials")
		}
		return []Credential{{clientID, token}}, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var creds []Credential
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var c Credential
		if err := json.Unmarshal([]byte(text), &c); err != nil || c.ClientID == "" || c.Token == "" {
			return nil, fmt.Errorf("%s:%d: want {\"clientId\": ..., \"token\": ...}", file, line)
		}
		creds = append(creds, c)
	}
	if n > 0 {
		if n > len(creds) {
			return nil, fmt.Errorf("-n %d but %s holds %d credentials", n, file, len(creds))
		}
		creds = creds[:n]
	}
	return creds, sc.Err()
}

// lockedWriter keeps lines of concurrent satellites whole.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
