package satctl

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

// Usage is the help text of satctl.
const Usage = `satctl manages Checkstack satellites through the admin API.

Usage:
  satctl [--endpoint URL] [--json] <command> [arguments]

Commands:
  create --name NAME --region REGION [--tag k=v]... [--offline-threshold 5m]
        Create a satellite. Prints its id and its token: the token is shown
        this once and stored only as a hash.
  list  List satellites with status, last seen, version and sync state.
  get ID
        Show one satellite with its assignments.
  update ID [--name NAME] [--region REGION] [--tag k=v]... [--clear-tags]
            [--offline-threshold 10m | --clear-offline-threshold]
        Change a satellite. The threshold (2m to 24h) overrides the default
        45 s; it applies from the satellite's next heartbeat.
  rotate-token ID
        Issue a new token. The old one stops working at once; the satellite's
        live connection is sent shutdown and closed.
  delete ID
        Shut the satellite's connection down and delete it, its assignments,
        sync state and connection records.
  online
        List the ids of satellites online now.
  assign ID --file FILE
        Replace the satellite's assignments with the JSON array in FILE ("-"
        reads stdin). A connected satellite gets config_updated at once.
  publish NAME@VERSION=PATH [NAME@VERSION=PATH]...
        Publish a script-package set: blobs, manifest and desired lockfile;
        every connected satellite gets refresh_script_packages.
  packages
        Show the desired lockfile, its packages and each satellite's sync state.
  results --config-id ID --system-id ID [--limit 20]
        Show the latest results of a check, newest first.

Global flags (before or after the command):
  --endpoint URL   admin API base URL (default $SATCTL_ENDPOINT). Requests to a
                   non-local endpoint are SigV4-signed for execute-api with the
                   standard AWS credential chain (environment, profile, SSO, ...).
  --aws-region R   region to sign for (default: from the AWS configuration,
                   else from the endpoint's host name)
  --json           print the API's JSON instead of tables

Exit status: 0 on success, 1 when the API refuses the request (its error
message is printed), 2 on a usage error.
`

// Run executes satctl with args, printing to stdout and stderr, and returns
// the exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("satctl", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	opts := &options{}
	opts.register(global)
	if err := global.Parse(args); err != nil || global.NArg() == 0 {
		if errors.Is(err, flag.ErrHelp) || global.NArg() == 0 {
			fmt.Fprint(stdout, Usage)
			if global.NArg() == 0 && !errors.Is(err, flag.ErrHelp) {
				return 2
			}
			return 0
		}
		fmt.Fprintln(stderr, "satctl:", err)
		return 2
	}
	name, rest := global.Arg(0), global.Args()[1:]
	cmd, ok := commands[name]
	if !ok {
		if name == "help" {
			fmt.Fprint(stdout, Usage)
			return 0
		}
		fmt.Fprintf(stderr, "satctl: unknown command %q (satctl --help lists them)\n", name)
		return 2
	}
	fs := flag.NewFlagSet("satctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts.register(fs)
	run := cmd(fs)
	positional, err := parseInterleaved(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	client, err := opts.client(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "satctl:", err)
		return 2
	}
	env := &env{ctx: ctx, client: client, json: opts.json, stdin: stdin, out: stdout, args: positional}
	if err := run(env); err != nil {
		var usage usageError
		if errors.As(err, &usage) {
			fmt.Fprintf(stderr, "satctl %s: %s\n", name, usage.msg)
			return 2
		}
		fmt.Fprintf(stderr, "satctl %s: %v\n", name, err)
		return 1
	}
	return 0
}

// parseInterleaved parses flags wherever they are among the arguments
// (`assign ID --file f` as well as `assign --file f ID`) and returns the
// positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

type options struct {
	endpoint string
	region   string
	json     bool
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.endpoint, "endpoint", o.orEnv(), "admin API base URL")
	fs.StringVar(&o.region, "aws-region", o.region, "AWS region to sign for")
	fs.BoolVar(&o.json, "json", o.json, "print JSON")
}

func (o *options) orEnv() string {
	if o.endpoint != "" {
		return o.endpoint
	}
	return os.Getenv("SATCTL_ENDPOINT")
}

func (o *options) client(ctx context.Context) (*Client, error) {
	if o.endpoint == "" {
		return nil, errors.New("no endpoint: give --endpoint URL or set SATCTL_ENDPOINT (make dev prints the local one)")
	}
	c := &Client{Endpoint: o.endpoint}
	if IsLocal(o.endpoint) {
		return c, nil
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	c.Credentials, c.Region = cfg.Credentials, o.region
	if c.Region == "" {
		c.Region = cfg.Region
	}
	if c.Region == "" {
		c.Region = regionOf(o.endpoint)
	}
	if c.Region == "" {
		return nil, errors.New("no region to sign for: give --aws-region")
	}
	return c, nil
}

// regionOf reads the region from an execute-api host name.
func regionOf(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	parts := strings.Split(u.Hostname(), ".")
	for i, p := range parts {
		if p == "execute-api" && i+1 < len(parts) {
			return parts[i+1]
		}
	}
	return ""
}

type env struct {
	ctx    context.Context
	client *Client
	json   bool
	stdin  io.Reader
	out    io.Writer
	args   []string
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// tags collects repeated --tag k=v flags.
type tags map[string]string

func (t tags) String() string { return fmt.Sprint(map[string]string(t)) }
func (t tags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	t[k] = val
	return nil
}

type command func(fs *flag.FlagSet) func(*env) error

var commands = map[string]command{
	"create": func(fs *flag.FlagSet) func(*env) error {
		name := fs.String("name", "", "satellite name")
		region := fs.String("region", "", "satellite region (where it runs), e.g. eu-central-1")
		tg := tags{}
		fs.Var(tg, "tag", "tag key=value (repeatable)")
		threshold := fs.Duration("offline-threshold", 0, "offline threshold override, 2m to 24h")
		return func(e *env) error {
			body := map[string]any{"name": *name, "region": *region, "tags": tg}
			if *threshold > 0 {
				body["offlineThresholdMs"] = threshold.Milliseconds()
			}
			var out struct {
				Satellite satelliteView `json:"satellite"`
				Token     string        `json:"token"`
			}
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, "POST", "/satellites", nil, body, &raw); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(raw)
			}
			_ = json.Unmarshal(raw, &out)
			e.table([]string{"ID", "NAME", "REGION", "STATUS"}, [][]string{{out.Satellite.SatelliteID, out.Satellite.Name, out.Satellite.Region, out.Satellite.Status}})
			fmt.Fprintf(e.out, "\ntoken: %s\nStore it now: it is not shown again.\n", out.Token)
			return nil
		}
	},
	"list": func(fs *flag.FlagSet) func(*env) error {
		return func(e *env) error {
			var out struct {
				Satellites []satelliteView `json:"satellites"`
			}
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, "GET", "/satellites", nil, nil, &raw); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(raw)
			}
			_ = json.Unmarshal(raw, &out)
			rows := [][]string{}
			for _, s := range out.Satellites {
				rows = append(rows, s.row())
			}
			e.table(satelliteHeader, rows)
			return nil
		}
	},
	"get": func(fs *flag.FlagSet) func(*env) error {
		return func(e *env) error {
			id, err := e.id()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, "GET", "/satellites/"+url.PathEscape(id), nil, nil, &raw); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(raw)
			}
			var s satelliteView
			_ = json.Unmarshal(raw, &s)
			e.table(satelliteHeader, [][]string{s.row()})
			rows := [][]string{}
			for _, a := range s.Assignments {
				rows = append(rows, []string{a.ConfigID, a.SystemID, a.StrategyID, fmt.Sprint(a.IntervalSeconds), fmt.Sprint(len(a.Collectors))})
			}
			fmt.Fprintln(e.out)
			e.table([]string{"CONFIG", "SYSTEM", "STRATEGY", "INTERVAL S", "COLLECTORS"}, rows)
			return nil
		}
	},
	"update": func(fs *flag.FlagSet) func(*env) error {
		name := fs.String("name", "", "new name")
		sregion := fs.String("region", "", "new satellite region")
		tg := tags{}
		fs.Var(tg, "tag", "tag key=value (repeatable; replaces all tags)")
		clearTags := fs.Bool("clear-tags", false, "remove all tags")
		threshold := fs.Duration("offline-threshold", 0, "offline threshold override, 2m to 24h")
		clearThreshold := fs.Bool("clear-offline-threshold", false, "back to the default threshold")
		return func(e *env) error {
			id, err := e.id()
			if err != nil {
				return err
			}
			body := map[string]any{}
			if *name != "" {
				body["name"] = *name
			}
			if *sregion != "" {
				body["region"] = *sregion
			}
			if len(tg) > 0 {
				body["tags"] = tg
			}
			if *clearTags {
				body["tags"] = nil
			}
			if *threshold > 0 {
				body["offlineThresholdMs"] = threshold.Milliseconds()
			}
			if *clearThreshold {
				body["offlineThresholdMs"] = nil
			}
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, "PATCH", "/satellites/"+url.PathEscape(id), nil, body, &raw); err != nil {
				return err
			}
			return e.printSatellite(raw)
		}
	},
	"rotate-token": func(fs *flag.FlagSet) func(*env) error {
		return func(e *env) error {
			id, err := e.id()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, "POST", "/satellites/"+url.PathEscape(id)+"/token", nil, nil, &raw); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(raw)
			}
			var out struct {
				Token            string
				ShutdownComplete bool
			}
			_ = json.Unmarshal(raw, &out)
			fmt.Fprintf(e.out, "token: %s\n", out.Token)
			if out.ShutdownComplete {
				fmt.Fprintln(e.out, "The old token no longer works; the satellite's connections were shut down.")
			} else {
				fmt.Fprintln(e.out, "The old token no longer works and its connections have lost their authority, but not all of them could be sent shutdown and closed.")
			}
			return nil
		}
	},
	"delete": func(fs *flag.FlagSet) func(*env) error {
		return func(e *env) error {
			id, err := e.id()
			if err != nil {
				return err
			}
			if err := e.client.Do(e.ctx, "DELETE", "/satellites/"+url.PathEscape(id), nil, nil, nil); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(json.RawMessage(fmt.Sprintf(`{"deleted":%q}`, id)))
			}
			fmt.Fprintf(e.out, "deleted %s\n", id)
			return nil
		}
	},
	"online": func(fs *flag.FlagSet) func(*env) error {
		return func(e *env) error {
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, "GET", "/satellites/online", nil, nil, &raw); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(raw)
			}
			var out struct {
				SatelliteIDs []string `json:"satelliteIds"`
			}
			_ = json.Unmarshal(raw, &out)
			for _, id := range out.SatelliteIDs {
				fmt.Fprintln(e.out, id)
			}
			return nil
		}
	},
	"assign": func(fs *flag.FlagSet) func(*env) error {
		file := fs.String("file", "", `JSON array of assignments ("-": stdin)`)
		return func(e *env) error {
			id, err := e.id()
			if err != nil {
				return err
			}
			if *file == "" {
				return usagef("--file is required")
			}
			var b []byte
			if *file == "-" {
				b, err = io.ReadAll(e.stdin)
			} else {
				b, err = os.ReadFile(*file)
			}
			if err != nil {
				return err
			}
			var assignments json.RawMessage
			var wrapped struct {
				Assignments json.RawMessage `json:"assignments"`
			}
			switch {
			case json.Unmarshal(b, &wrapped) == nil && wrapped.Assignments != nil:
				assignments = wrapped.Assignments
			case json.Valid(b):
				assignments = b
			default:
				return usagef("%s is not JSON", *file)
			}
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, "PUT", "/satellites/"+url.PathEscape(id)+"/assignments", nil, map[string]any{"assignments": assignments}, &raw); err != nil {
				return err
			}
			return e.printSatellite(raw)
		}
	},
	"publish": func(fs *flag.FlagSet) func(*env) error {
		return func(e *env) error {
			if len(e.args) == 0 {
				return usagef("give NAME@VERSION=PATH for each package")
			}
			var packages []map[string]any
			for _, arg := range e.args {
				spec, path, ok := strings.Cut(arg, "=")
				at := strings.LastIndex(spec, "@")
				if !ok || at <= 0 {
					return usagef("%q is not NAME@VERSION=PATH", arg)
				}
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				packages = append(packages, map[string]any{
					"name": spec[:at], "version": spec[at+1:],
					"integrity": scriptpkg.Integrity(data), "data": base64.StdEncoding.EncodeToString(data),
				})
			}
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, "POST", "/script-packages", nil, map[string]any{"packages": packages}, &raw); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(raw)
			}
			var out struct {
				LockfileHash string `json:"lockfileHash"`
				Entries      []struct{ Name, Version, Integrity string }
				Refresh      struct{ Sent, Gone, Failed int }
			}
			_ = json.Unmarshal(raw, &out)
			fmt.Fprintf(e.out, "lockfile %s: %d package(s); refresh sent to %d connection(s) (%d gone, %d failed)\n",
				out.LockfileHash, len(out.Entries), out.Refresh.Sent, out.Refresh.Gone, out.Refresh.Failed)
			return nil
		}
	},
	"packages": func(fs *flag.FlagSet) func(*env) error {
		return func(e *env) error {
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, "GET", "/script-packages", nil, nil, &raw); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(raw)
			}
			var out struct {
				LockfileHash *string `json:"lockfileHash"`
				Entries      []struct{ Name, Version, Integrity string }
				Satellites   []struct {
					SatelliteID string         `json:"satelliteId"`
					Name        string         `json:"name"`
					SyncState   *syncStateView `json:"syncState"`
					UpToDate    bool           `json:"upToDate"`
				}
			}
			_ = json.Unmarshal(raw, &out)
			fmt.Fprintf(e.out, "desired lockfile: %s\n\n", orDash(out.LockfileHash))
			rows := [][]string{}
			for _, p := range out.Entries {
				rows = append(rows, []string{p.Name, p.Version, p.Integrity})
			}
			e.table([]string{"PACKAGE", "VERSION", "INTEGRITY"}, rows)
			fmt.Fprintln(e.out)
			rows = [][]string{}
			for _, s := range out.Satellites {
				rows = append(rows, []string{s.SatelliteID, s.Name, s.SyncState.describe(), fmt.Sprint(s.UpToDate)})
			}
			e.table([]string{"SATELLITE", "NAME", "SYNC", "UP TO DATE"}, rows)
			return nil
		}
	},
	"results": func(fs *flag.FlagSet) func(*env) error {
		configID := fs.String("config-id", "", "check configuration id")
		systemID := fs.String("system-id", "", "system id")
		limit := fs.Int("limit", 20, "how many, 1 to 100")
		return func(e *env) error {
			q := url.Values{"configId": {*configID}, "systemId": {*systemID}, "limit": {fmt.Sprint(*limit)}}
			var raw json.RawMessage
			if err := e.client.Do(e.ctx, "GET", "/results", q, nil, &raw); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(raw)
			}
			var out struct {
				Results []struct {
					SatelliteID string    `json:"satelliteId"`
					Source      string    `json:"source"`
					Status      string    `json:"status"`
					LatencyMs   *float64  `json:"latencyMs"`
					ExecutedAt  time.Time `json:"executedAt"`
				}
			}
			_ = json.Unmarshal(raw, &out)
			rows := [][]string{}
			for _, r := range out.Results {
				latency := "-"
				if r.LatencyMs != nil {
					latency = fmt.Sprint(*r.LatencyMs)
				}
				rows = append(rows, []string{r.ExecutedAt.UTC().Format(time.RFC3339), r.Status, latency, r.Source})
			}
			e.table([]string{"EXECUTED", "STATUS", "LATENCY MS", "SOURCE"}, rows)
			return nil
		}
	},
}

func (e *env) id() (string, error) {
	if len(e.args) != 1 {
		return "", usagef("give exactly one satellite id")
	}
	return e.args[0], nil
}

func (e *env) printJSON(raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *env) printSatellite(raw json.RawMessage) error {
	if e.json {
		return e.printJSON(raw)
	}
	var s satelliteView
	_ = json.Unmarshal(raw, &s)
	e.table(satelliteHeader, [][]string{s.row()})
	return nil
}

func (e *env) table(header []string, rows [][]string) {
	w := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	_ = w.Flush()
}

type satelliteView struct {
	SatelliteID         string            `json:"satelliteId"`
	Name                string            `json:"name"`
	Region              string            `json:"region"`
	Tags                map[string]string `json:"tags"`
	OfflineThresholdMs  *int64            `json:"offlineThresholdMs"`
	Status              string            `json:"status"`
	LastSeenAt          *time.Time        `json:"lastSeenAt"`
	Version             string            `json:"version"`
	LastConnectionEvent string            `json:"lastConnectionEvent"`
	SyncState           *syncStateView    `json:"syncState"`
	Assignments         []struct {
		ConfigID        string  `json:"configId"`
		SystemID        string  `json:"systemId"`
		StrategyID      string  `json:"strategyId"`
		IntervalSeconds float64 `json:"intervalSeconds"`
		Collectors      []any   `json:"collectors"`
	} `json:"assignments"`
}

type syncStateView struct {
	LockfileHash *string `json:"lockfileHash"`
	Status       string  `json:"status"`
	ErrorMessage string  `json:"errorMessage"`
}

func (s *syncStateView) describe() string {
	if s == nil {
		return "-"
	}
	d := s.Status
	if s.LockfileHash != nil {
		h := *s.LockfileHash
		if len(h) > 12 {
			h = h[:12]
		}
		d += " " + h
	}
	if s.ErrorMessage != "" {
		d += ": " + s.ErrorMessage
	}
	return d
}

var satelliteHeader = []string{"ID", "NAME", "REGION", "STATUS", "LAST SEEN", "VERSION", "EDGE", "THRESHOLD", "SYNC", "TAGS"}

func (s satelliteView) row() []string {
	seen := "-"
	if s.LastSeenAt != nil {
		seen = s.LastSeenAt.UTC().Format(time.RFC3339)
	}
	threshold := "45s"
	if s.OfflineThresholdMs != nil {
		threshold = (time.Duration(*s.OfflineThresholdMs) * time.Millisecond).String()
	}
	var tagList []string
	for k, v := range s.Tags {
		tagList = append(tagList, k+"="+v)
	}
	sort.Strings(tagList)
	return []string{s.SatelliteID, s.Name, s.Region, s.Status, seen, orDash(&s.Version), orDash(&s.LastConnectionEvent), threshold, s.SyncState.describe(), strings.Join(tagList, ",")}
}

func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}
