package satctl

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
)

// cmdCreate is `satctl create`.
func cmdCreate(fs *flag.FlagSet) func(*env) error {
	name := fs.String("name", "", "satellite name")
	region := fs.String("region", "", "satellite region (where it runs), e.g. eu-central-1")
	tg := tags{}
	fs.Var(tg, "tag", "tag key=value (repeatable)")
	threshold := fs.Duration("offline-threshold", 0, "offline threshold override, 15s to 24h")
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
}

// cmdList is `satctl list`: every page of GET /satellites, or one with
// --one-page.
func cmdList(fs *flag.FlagSet) func(*env) error {
	p := registerPaging(fs)
	return func(e *env) error {
		var sats []json.RawMessage
		var last json.RawMessage
		next, err := e.fetch("/satellites", p, func(raw json.RawMessage) error {
			var page struct {
				Satellites []json.RawMessage `json:"satellites"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return err
			}
			sats, last = append(sats, page.Satellites...), raw
			return nil
		})
		if err != nil {
			return err
		}
		if e.json {
			if p.onePage {
				return e.printJSON(last)
			}
			if sats == nil {
				sats = []json.RawMessage{}
			}
			all, _ := json.Marshal(map[string]any{"satellites": sats})
			return e.printJSON(all)
		}
		rows := [][]string{}
		for _, raw := range sats {
			var s satelliteView
			_ = json.Unmarshal(raw, &s)
			rows = append(rows, s.row())
		}
		e.table(satelliteHeader, rows)
		e.printNextToken("list", next)
		return nil
	}
}

// cmdGet is `satctl get ID`.
func cmdGet(fs *flag.FlagSet) func(*env) error {
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
		e.printWarnings(s)
		rows := [][]string{}
		for _, a := range s.Assignments {
			envs := make([]string, 0, len(a.Environments))
			for _, env := range a.Environments {
				envs = append(envs, env.ID)
			}
			rows = append(rows, []string{a.ConfigID, a.SystemID, a.StrategyID, fmt.Sprint(a.IntervalSeconds), fmt.Sprint(len(a.Collectors)), orDashList(envs)})
		}
		fmt.Fprintln(e.out)
		e.table([]string{"CONFIG", "SYSTEM", "STRATEGY", "INTERVAL S", "COLLECTORS", "ENVIRONMENTS"}, rows)
		if len(s.CapabilityConfigs) > 0 {
			rows = [][]string{}
			for _, c := range s.CapabilityConfigs {
				rows = append(rows, c.row())
			}
			fmt.Fprintln(e.out)
			e.table(capabilityConfigHeader, rows)
		}
		if len(s.CapabilityStatuses) > 0 {
			rows = [][]string{}
			for _, st := range s.CapabilityStatuses {
				rows = append(rows, st.row())
			}
			fmt.Fprintln(e.out)
			e.table([]string{"STATUS OF", "REPORTED", "PAYLOAD"}, rows)
		}
		return nil
	}
}

// cmdUpdate is `satctl update ID`.
func cmdUpdate(fs *flag.FlagSet) func(*env) error {
	name := fs.String("name", "", "new name")
	sregion := fs.String("region", "", "new satellite region")
	tg := tags{}
	fs.Var(tg, "tag", "tag key=value (repeatable; replaces all tags)")
	clearTags := fs.Bool("clear-tags", false, "remove all tags")
	threshold := fs.Duration("offline-threshold", 0, "offline threshold override, 15s to 24h")
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
}

// cmdRotateToken is `satctl rotate-token ID`.
func cmdRotateToken(fs *flag.FlagSet) func(*env) error {
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
}

// cmdDelete is `satctl delete ID`.
func cmdDelete(fs *flag.FlagSet) func(*env) error {
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
}

// cmdOnline is `satctl online`.
func cmdOnline(fs *flag.FlagSet) func(*env) error {
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
}
