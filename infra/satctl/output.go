package satctl

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

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
	e.printWarnings(s)
	return nil
}

// printWarnings prints what the API says an operator should act on, one
// line each, with the record behind it.
func (e *env) printWarnings(s satelliteView) {
	for _, w := range s.Warnings {
		line := "WARNING: " + w
		if o := s.OversizedMessages; o != nil && o.Marked && w == satellite.OversizedMessagesWarning {
			line += fmt.Sprintf(" (%d connections closed with 1009, the last at %s; the limit is %d bytes a message)",
				o.Closes, o.LastAt.UTC().Format(time.RFC3339), o.LimitBytes)
		}
		fmt.Fprintln(e.out, line)
	}
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
	SatelliteID         string                 `json:"satelliteId"`
	Name                string                 `json:"name"`
	Region              string                 `json:"region"`
	Tags                map[string]string      `json:"tags"`
	OfflineThresholdMs  *int64                 `json:"offlineThresholdMs"`
	Status              string                 `json:"status"`
	LastSeenAt          *time.Time             `json:"lastSeenAt"`
	Version             string                 `json:"version"`
	LastConnectionEvent string                 `json:"lastConnectionEvent"`
	SyncState           *syncStateView         `json:"syncState"`
	Capabilities        []string               `json:"capabilities"`
	CapabilityConfigs   []capabilityConfigView `json:"capabilityConfigs"`
	CapabilityStatuses  []capabilityStatusView `json:"capabilityStatuses"`
	OversizedMessages   *struct {
		Closes     int64     `json:"closes"`
		LastAt     time.Time `json:"lastAt"`
		Marked     bool      `json:"marked"`
		LimitBytes int       `json:"limitBytes"`
	} `json:"oversizedMessages"`
	Warnings    []string `json:"warnings"`
	Assignments []struct {
		ConfigID        string  `json:"configId"`
		SystemID        string  `json:"systemId"`
		StrategyID      string  `json:"strategyId"`
		IntervalSeconds float64 `json:"intervalSeconds"`
		Collectors      []any   `json:"collectors"`
		Environments    []struct {
			ID string `json:"id"`
		} `json:"environments"`
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

var satelliteHeader = []string{"ID", "NAME", "REGION", "STATUS", "LAST SEEN", "VERSION", "EDGE", "THRESHOLD", "SYNC", "TAGS", "CAPABILITIES"}

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
	return []string{s.SatelliteID, s.Name, s.Region, s.Status, seen, orDash(&s.Version), orDash(&s.LastConnectionEvent), threshold, s.SyncState.describe(), strings.Join(tagList, ","), orDashList(s.Capabilities)}
}

func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}
