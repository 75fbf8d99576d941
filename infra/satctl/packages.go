package satctl

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/checkstack/satellite-backend/shared/scriptpkg"
)

// cmdPublish is `satctl publish [--no-wait] NAME@VERSION=PATH...`: it
// publishes, then follows the refresh job until every connected satellite
// was sent refresh_script_packages.
func cmdPublish(fs *flag.FlagSet) func(*env) error {
	wait := registerFanoutFlags(fs)
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
		headers, err := e.client.DoHeaders(e.ctx, "POST", "/script-packages", nil, map[string]any{"packages": packages}, &raw)
		if err != nil {
			return err
		}
		var out struct {
			LockfileHash string `json:"lockfileHash"`
			Entries      []struct{ Name, Version, Integrity string }
			Refresh      fanoutView `json:"refresh"`
		}
		_ = json.Unmarshal(raw, &out)
		if !e.json {
			fmt.Fprintf(e.out, "lockfile %s: %s published; refresh job %s started on %s\n",
				out.LockfileHash, plural(len(out.Entries), "package"), out.Refresh.JobID, plural(out.Refresh.Segments, "segment"))
		}
		if *wait.noWait {
			if e.json {
				return e.printJSON(raw)
			}
			fmt.Fprintf(e.out, "follow it with: satctl fan-out %s\n", out.Refresh.JobID)
			return nil
		}
		job, err := e.follow(headers.Get("Location"), out.Refresh, wait)
		if e.json && job != nil {
			merged, merr := withJob(raw, "refresh", job)
			if merr != nil {
				return merr
			}
			if perr := e.printJSON(merged); perr != nil {
				return perr
			}
		}
		return err
	}
}

// cmdPackages is `satctl packages`.
func cmdPackages(fs *flag.FlagSet) func(*env) error {
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
}
