package satctl

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// readFile reads a command's --file ("-" reads stdin).
func (e *env) readFile(file string) ([]byte, error) {
	if file == "" {
		return nil, usagef("--file is required")
	}
	if file == "-" {
		return io.ReadAll(e.stdin)
	}
	return os.ReadFile(file)
}

// cmdSandboxPolicy is `satctl sandbox-policy get` and
// `satctl sandbox-policy set --file FILE [--no-wait]`, which follows the
// push to every connected satellite.
func cmdSandboxPolicy(fs *flag.FlagSet) func(*env) error {
	file := fs.String("file", "", `the policy, a JSON object ("-": stdin)`)
	wait := registerFanoutFlags(fs)
	return func(e *env) error {
		if len(e.args) != 1 || (e.args[0] != "get" && e.args[0] != "set") {
			return usagef("give get or set")
		}
		var raw json.RawMessage
		var headers http.Header
		if e.args[0] == "get" {
			if err := e.client.Do(e.ctx, "GET", "/sandbox-policy", nil, nil, &raw); err != nil {
				return err
			}
		} else {
			b, err := e.readFile(*file)
			if err != nil {
				return err
			}
			if !json.Valid(b) {
				return usagef("%s is not JSON", *file)
			}
			if headers, err = e.client.DoHeaders(e.ctx, "PUT", "/sandbox-policy", nil, json.RawMessage(b), &raw); err != nil {
				return err
			}
		}
		var out policyView
		_ = json.Unmarshal(raw, &out)
		if out.Push == nil || *wait.noWait {
			if e.json {
				return e.printJSON(raw)
			}
			return e.printPolicy(out)
		}
		if !e.json {
			fmt.Fprintf(e.out, "updated %s; push job %s started on %s\n", out.UpdatedAt.UTC().Format(time.RFC3339), out.Push.JobID, plural(out.Push.Segments, "segment"))
		}
		job, err := e.follow(headers.Get("Location"), *out.Push, wait)
		if e.json && job != nil {
			merged, merr := withJob(raw, "push", job)
			if merr != nil {
				return merr
			}
			if perr := e.printJSON(merged); perr != nil {
				return perr
			}
			return err
		}
		if err != nil {
			return err
		}
		return e.printJSON(out.Policy)
	}
}

// policyView is the answer of GET and PUT /sandbox-policy.
type policyView struct {
	Policy    json.RawMessage `json:"policy"`
	UpdatedAt *time.Time      `json:"updatedAt"`
	// Source is "set", "default" or "none" (absent from a backend older
	// than the default policy: "set" when UpdatedAt is, else "none").
	Source  string      `json:"source"`
	Warning string      `json:"warning"`
	Push    *fanoutView `json:"push"`
}

// printPolicy prints the policy in force and where it comes from.
func (e *env) printPolicy(v policyView) error {
	switch {
	case v.Source == "default":
		fmt.Fprintln(e.out, "no policy set: the deployment's default (DefaultSandboxPolicy) is in force; satellites are sent")
		return e.printJSON(v.Policy)
	case v.UpdatedAt == nil:
		fmt.Fprintln(e.out, "no sandbox policy set: satellites run scripts fail-closed (egress denied)")
		return nil
	}
	fmt.Fprintf(e.out, "updated %s\n", v.UpdatedAt.UTC().Format(time.RFC3339))
	if v.Push != nil {
		fmt.Fprintf(e.out, "push job %s started; follow it with: satctl fan-out %s\n", v.Push.JobID, v.Push.JobID)
	}
	if v.Warning != "" {
		fmt.Fprintf(e.out, "warning: %s\n", v.Warning)
		return nil
	}
	return e.printJSON(v.Policy)
}

// cmdCapability is `satctl capability set ID KIND --file FILE` and
// `satctl capability delete ID KIND`.
func cmdCapability(fs *flag.FlagSet) func(*env) error {
	file := fs.String("file", "", `{"payload": ..., "secrets": {resource: {field: "${{ secrets.NAME }}"}}} ("-": stdin)`)
	return func(e *env) error {
		if len(e.args) != 3 || (e.args[0] != "set" && e.args[0] != "delete") {
			return usagef("give set or delete, a satellite id and a kind")
		}
		path := "/satellites/" + url.PathEscape(e.args[1]) + "/capabilities/" + url.PathEscape(e.args[2])
		if e.args[0] == "delete" {
			if err := e.client.Do(e.ctx, "DELETE", path, nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(e.out, "deleted the %s config of %s; the satellite keeps it until it reconnects\n", e.args[2], e.args[1])
			return nil
		}
		b, err := e.readFile(*file)
		if err != nil {
			return err
		}
		if !json.Valid(b) {
			return usagef("%s is not JSON", *file)
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, "PUT", path, nil, json.RawMessage(b), &raw); err != nil {
			return err
		}
		if e.json {
			return e.printJSON(raw)
		}
		var c capabilityConfigView
		_ = json.Unmarshal(raw, &c)
		e.table(capabilityConfigHeader, [][]string{c.row()})
		return nil
	}
}

// cmdTelemetry is `satctl telemetry`.
func cmdTelemetry(fs *flag.FlagSet) func(*env) error {
	satelliteID := fs.String("satellite-id", "", "only this satellite's batches")
	kind := fs.String("kind", "", "only batches of this kind")
	since := fs.String("since", "24h", "how far back: a duration (24h) or an RFC 3339 time")
	limit := fs.Int("limit", 100, "how many, 1 to 1000, newest first")
	return func(e *env) error {
		q := url.Values{"limit": {fmt.Sprint(*limit)}}
		if *satelliteID != "" {
			q.Set("satelliteId", *satelliteID)
		}
		if *kind != "" {
			q.Set("kind", *kind)
		}
		if d, err := time.ParseDuration(*since); err == nil {
			q.Set("since", time.Now().Add(-d).UTC().Format(time.RFC3339))
		} else if _, err := time.Parse(time.RFC3339, *since); err == nil {
			q.Set("since", *since)
		} else {
			return usagef("--since %q is neither a duration nor an RFC 3339 time", *since)
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, "GET", "/telemetry", q, nil, &raw); err != nil {
			return err
		}
		if e.json {
			return e.printJSON(raw)
		}
		var out struct {
			Truncated bool `json:"truncated"`
			Batches   []struct {
				Key         string    `json:"key"`
				Kind        string    `json:"kind"`
				SatelliteID string    `json:"satelliteId"`
				ReceivedAt  time.Time `json:"receivedAt"`
				Size        int64     `json:"size"`
			}
		}
		_ = json.Unmarshal(raw, &out)
		rows := [][]string{}
		for _, b := range out.Batches {
			rows = append(rows, []string{b.ReceivedAt.UTC().Format(time.RFC3339Nano), b.SatelliteID, b.Kind, fmt.Sprint(b.Size), b.Key})
		}
		e.table([]string{"RECEIVED", "SATELLITE", "KIND", "BYTES", "KEY"}, rows)
		if out.Truncated {
			fmt.Fprintln(e.out, "\nThe listing stopped at its scan bound; narrow it with --satellite-id, --kind or --since.")
		}
		return nil
	}
}

type capabilityConfigView struct {
	Kind      string                       `json:"kind"`
	Secrets   map[string]map[string]string `json:"secrets"`
	UpdatedAt time.Time                    `json:"updatedAt"`
}

var capabilityConfigHeader = []string{"KIND", "UPDATED", "BOUND RESOURCES"}

func (c capabilityConfigView) row() []string {
	resources := make([]string, 0, len(c.Secrets))
	for r, fields := range c.Secrets {
		names := make([]string, 0, len(fields))
		for f := range fields {
			names = append(names, f)
		}
		sort.Strings(names)
		resources = append(resources, r+"("+strings.Join(names, ",")+")")
	}
	sort.Strings(resources)
	return []string{c.Kind, c.UpdatedAt.UTC().Format(time.RFC3339), orDashList(resources)}
}

type capabilityStatusView struct {
	Kind       string          `json:"kind"`
	Payload    json.RawMessage `json:"payload"`
	ReportedAt time.Time       `json:"reportedAt"`
}

// maxShownStatus bounds how much of a status payload a table shows.
const maxShownStatus = 80

func (s capabilityStatusView) row() []string {
	p := string(s.Payload)
	if len(p) > maxShownStatus {
		p = p[:maxShownStatus] + "…"
	}
	return []string{s.Kind, s.ReportedAt.UTC().Format(time.RFC3339), p}
}

func orDashList(list []string) string {
	if len(list) == 0 {
		return "-"
	}
	return strings.Join(list, " ")
}
