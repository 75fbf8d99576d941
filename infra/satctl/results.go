package satctl

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"time"
)

// cmdResults is `satctl results`.
func cmdResults(fs *flag.FlagSet) func(*env) error {
	configID := fs.String("config-id", "", "check configuration id")
	systemID := fs.String("system-id", "", "system id")
	environment := fs.String("environment", "", "only results of runs for this environment")
	limit := fs.Int("limit", 20, "how many, 1 to 100")
	return func(e *env) error {
		q := url.Values{"configId": {*configID}, "systemId": {*systemID}, "limit": {fmt.Sprint(*limit)}}
		if *environment != "" {
			q.Set("environmentId", *environment)
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, "GET", "/results", q, nil, &raw); err != nil {
			return err
		}
		if e.json {
			return e.printJSON(raw)
		}
		var out struct {
			Results []struct {
				SatelliteID   string    `json:"satelliteId"`
				EnvironmentID *string   `json:"environmentId"`
				Source        string    `json:"source"`
				Status        string    `json:"status"`
				LatencyMs     *float64  `json:"latencyMs"`
				ExecutedAt    time.Time `json:"executedAt"`
			}
		}
		_ = json.Unmarshal(raw, &out)
		rows := [][]string{}
		for _, r := range out.Results {
			latency := "-"
			if r.LatencyMs != nil {
				latency = fmt.Sprint(*r.LatencyMs)
			}
			rows = append(rows, []string{r.ExecutedAt.UTC().Format(time.RFC3339), r.Status, latency, orDash(r.EnvironmentID), r.Source})
		}
		e.table([]string{"EXECUTED", "STATUS", "LATENCY MS", "ENVIRONMENT", "SOURCE"}, rows)
		return nil
	}
}
