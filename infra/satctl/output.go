package satctl

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
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
	Assignments         []struct {
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
