package satctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

// Usage is the help text of satctl.
const Usage = `satctl manages Checkstack satellites through the admin API.

Usage:
  satctl [--endpoint URL] [--json] <command> [arguments]

Commands:
  create --name NAME --region REGION [--tag k=v]... [--offline-threshold 5m]
        Create a satellite. Prints its id and its token: the token is shown
        this once and stored only as a hash.
  list [--limit N] [--one-page] [--next-token TOKEN]
        List satellites with status, last seen, version, sync state and
        capabilities, in id order. Fetches every page (of --limit, default
        100) unless --one-page, which prints the token of the next page.
  get ID
        Show one satellite with its assignments, capability configs and the
        latest status of each capability.
  update ID [--name NAME] [--region REGION] [--tag k=v]... [--clear-tags]
            [--offline-threshold 10m | --clear-offline-threshold]
        Change a satellite. The threshold (15s to 24h) overrides the default
        45 s; it applies at once.
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
  publish [--no-wait] [--wait-timeout 15m] NAME@VERSION=PATH [NAME@VERSION=PATH]...
        Publish a script-package set: blobs, manifest and desired lockfile;
        every connected satellite gets refresh_script_packages from a job
        that runs on its own. satctl follows it, printing sent/total as it
        goes, until every connected satellite was sent it (--no-wait
        returns once it started).
  packages [--limit N] [--one-page] [--next-token TOKEN]
        Show the desired lockfile, its packages and each satellite's sync
        state, paged as list.
  results --config-id ID --system-id ID [--environment ENV] [--limit 20]
        Show the latest results of a check, newest first (of one environment
        with --environment).
  sandbox-policy get | set --file FILE [--no-wait] [--wait-timeout 15m]
        Show or set the fleet-wide script sandbox policy (a JSON object). Every
        connected satellite gets it from a job satctl follows as publish's,
        every later one on authenticate; until one is set, satellites get
        the deployment's default (get says which is in force), or with none
        run scripts fail-closed.
  fan-out JOB_ID
        Show a push job's progress (a publish's refresh, a sandbox policy):
        sent/total, gone, failed, and whether it is done.
  capability set ID KIND --file FILE | capability delete ID KIND
        Set a satellite's config of a capability kind from FILE, {"payload":
        ..., "secrets": {RESOURCE: {FIELD: "${{ secrets.NAME }}"}}}: the
        payload is pushed to the satellite, the secrets never are (it asks
        for a bound resource's when it needs them).
  telemetry [--satellite-id ID] [--kind KIND] [--since 24h] [--limit 100]
        List stored telemetry batches, newest first.

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
	c := &Client{BaseURL: o.endpoint}
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

// commands is the command table; the commands themselves are in
// satellites.go, assignments.go, packages.go, results.go, fleet.go and
// fanouts.go.
var commands = map[string]command{
	"create":         cmdCreate,
	"list":           cmdList,
	"get":            cmdGet,
	"update":         cmdUpdate,
	"rotate-token":   cmdRotateToken,
	"delete":         cmdDelete,
	"online":         cmdOnline,
	"assign":         cmdAssign,
	"publish":        cmdPublish,
	"packages":       cmdPackages,
	"results":        cmdResults,
	"sandbox-policy": cmdSandboxPolicy,
	"capability":     cmdCapability,
	"telemetry":      cmdTelemetry,
	"fan-out":        cmdFanout,
}

func (e *env) id() (string, error) {
	if len(e.args) != 1 {
		return "", usagef("give exactly one satellite id")
	}
	return e.args[0], nil
}
