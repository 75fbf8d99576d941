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

// cmdPackages is `satctl packages`: the published set and every page of
// the satellites' sync states, or one page with --one-page.
func cmdPackages(fs *flag.FlagSet) func(*env) error {
	p := registerPaging(fs)
	return func(e *env) error {
		type satelliteSync struct {
			SatelliteID string         `json:"satelliteId"`
			Name        string         `json:"name"`
			SyncState   *syncStateView `json:"syncState"`
			UpToDate    bool           `json:"upToDate"`
		}
		var (
			first, last json.RawMessage
			sats        []json.RawMessage
		)
		next, err := e.fetch("/script-packages", p, func(raw json.RawMessage) error {
			var page struct {
				Satellites []json.RawMessage `json:"satellites"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return err
			}
			if first == nil {
				first = raw
			}
			sats, last = append(sats, page.Satellites...), raw
			return nil
		})
		if err != nil {
			return err
		}
		// The published set, as the first page gave it.
		var set struct {
			LockfileHash *string          `json:"lockfileHash"`
			Entries      *json.RawMessage `json:"entries"`
		}
		_ = json.Unmarshal(first, &set)
		if e.json {
			if p.onePage {
				return e.printJSON(last)
			}
			if sats == nil {
				sats = []json.RawMessage{}
			}
			all, _ := json.Marshal(map[string]any{"lockfileHash": set.LockfileHash, "entries": set.Entries, "satellites": sats})
			return e.printJSON(all)
		}
		var entries []struct{ Name, Version, Integrity string }
		if set.Entries != nil {
			_ = json.Unmarshal(*set.Entries, &entries)
		}
		fmt.Fprintf(e.out, "desired lockfile: %s\n\n", orDash(set.LockfileHash))
		rows := [][]string{}
		for _, pkg := range entries {
			rows = append(rows, []string{pkg.Name, pkg.Version, pkg.Integrity})
		}
		e.table([]string{"PACKAGE", "VERSION", "INTEGRITY"}, rows)
		fmt.Fprintln(e.out)
		rows = [][]string{}
		for _, raw := range sats {
			var s satelliteSync
			_ = json.Unmarshal(raw, &s)
			rows = append(rows, []string{s.SatelliteID, s.Name, s.SyncState.describe(), fmt.Sprint(s.UpToDate)})
		}
		e.table([]string{"SATELLITE", "NAME", "SYNC", "UP TO DATE"}, rows)
		e.printNextToken("packages", next)
		return nil
	}
}
