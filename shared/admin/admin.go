// Package admin is the operators' (and the Checkstack core's) API over the
// fleet: satellites and their tokens, assignments, script packages, results.
// Service holds the operations; Handler maps HTTP API (payload 2.0) requests
// onto them and errors onto HTTP statuses in one place.
package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/checkstack/satellite-backend/shared/fanout"
	"github.com/checkstack/satellite-backend/shared/protocol"
	"github.com/checkstack/satellite-backend/shared/push"
	"github.com/checkstack/satellite-backend/shared/satellite"
	"github.com/checkstack/satellite-backend/shared/token"
)

// DefaultPushSettle is PushSettle in the deployed admin function: longer
// than an authentication takes from reading the state to answering.
const DefaultPushSettle = 2 * time.Second

// Threshold bounds of a per-satellite offline threshold override, as
// upstream Checkstack's (OfflineThresholdMsSchema in
// core/satellite-common/src/schemas.ts): at least one heartbeat interval, at
// most a day.
const (
	MinOfflineThreshold = satellite.AgentHeartbeatInterval
	MaxOfflineThreshold = 24 * time.Hour
)

// Service is the fleet's operations.
type Service struct {
	Registry satellite.Fleet
	Push     *push.Service
	// Fanout starts the pushes to every connected satellite (package
	// refreshes, the sandbox policy) as asynchronous jobs and reads them.
	Fanout *fanout.Starter
	// Packages and Publisher are nil when no script-package store is
	// configured.
	Packages  satellite.PackageStore
	Publisher satellite.PackagePublisher
	// Telemetry lists stored telemetry of TelemetryKinds; nil when
	// telemetry storage is not configured.
	Telemetry      satellite.TelemetryArchive
	TelemetryKinds []string
	// DefaultSandboxPolicy is the policy in force while none is set (nil:
	// none); GET /sandbox-policy shows it as the endpoint sends it.
	DefaultSandboxPolicy json.RawMessage
	// PushSettle is how long a change's second push waits for
	// authentications that read the state before the change to answer
	// (0: no wait; the functions use DefaultPushSettle). A fan-out's late
	// pass starts no earlier than PushSettle after the change.
	PushSettle time.Duration
	Now        func() time.Time
	Log        *slog.Logger
}

// View is a satellite as the API shows it: never its token hash.
type View struct {
	SatelliteID         string            `json:"satelliteId"`
	Name                string            `json:"name"`
	Region              string            `json:"region"`
	Tags                map[string]string `json:"tags"`
	OfflineThresholdMs  *int64            `json:"offlineThresholdMs"`
	CreatedAt           time.Time         `json:"createdAt"`
	Status              satellite.Status  `json:"status"`
	LastSeenAt          *time.Time        `json:"lastSeenAt"`
	Version             string            `json:"version,omitempty"`
	LastConnectionEvent satellite.Edge    `json:"lastConnectionEvent,omitempty"`
	SyncState           *SyncStateView    `json:"syncState"`
	// Capabilities is what the agent last said it offers (null: never).
	Capabilities []string `json:"capabilities"`
	// OversizedMessages is the record of the satellite's connections API
	// Gateway closed for a message over 128 KB (1009); absent when none.
	OversizedMessages *OversizedView `json:"oversizedMessages,omitempty"`
	// Warnings say, in words, what an operator should act on; absent when
	// nothing.
	Warnings []string `json:"warnings,omitempty"`
	// Assignments, CapabilityConfigs and CapabilityStatuses are set on a
	// single satellite's view, not in lists.
	Assignments        *[]satellite.Assignment `json:"assignments,omitempty"`
	CapabilityConfigs  *[]CapabilityConfigView `json:"capabilityConfigs,omitempty"`
	CapabilityStatuses *[]CapabilityStatusView `json:"capabilityStatuses,omitempty"`
}

// OversizedView is a satellite's record of closes for oversized messages.
// Marked: its last two came within an hour of each other, the last less
// than a day ago (satellite.OversizedMessages.MarkedAt); its warning is
// then among the view's Warnings.
type OversizedView struct {
	Closes     int64      `json:"closes"`
	LastAt     time.Time  `json:"lastAt"`
	PreviousAt *time.Time `json:"previousAt"`
	Marked     bool       `json:"marked"`
	LimitBytes int        `json:"limitBytes"`
}

// SyncStateView is a satellite's reported script-package state.
type SyncStateView struct {
	LockfileHash *string              `json:"lockfileHash"`
	Status       satellite.SyncStatus `json:"status"`
	ErrorMessage string               `json:"errorMessage,omitempty"`
	ReportedAt   time.Time            `json:"reportedAt"`
}

func (s *Service) view(sat satellite.Satellite, assignments []satellite.Assignment) View {
	v := View{
		SatelliteID: sat.ID, Name: sat.Name, Region: sat.Region, Tags: sat.Tags, CreatedAt: sat.CreatedAt,
		Status: sat.StatusAt(s.Now()), Version: sat.Version, LastConnectionEvent: sat.LastConnectionEvent,
		Capabilities: sat.Capabilities,
	}
	if assignments != nil {
		v.Assignments = &assignments
	}
	if v.Tags == nil {
		v.Tags = map[string]string{}
	}
	if sat.OfflineThreshold > 0 {
		ms := sat.OfflineThreshold.Milliseconds()
		v.OfflineThresholdMs = &ms
	}
	if !sat.LastHeartbeatAt.IsZero() {
		t := sat.LastHeartbeatAt
		v.LastSeenAt = &t
	}
	if st := sat.SyncState; st != nil {
		v.SyncState = &SyncStateView{LockfileHash: st.LockfileHash, Status: st.Status, ErrorMessage: st.ErrorMessage, ReportedAt: st.ReportedAt}
	}
	if o := sat.Oversized; o.Closes > 0 {
		ov := &OversizedView{Closes: o.Closes, LastAt: o.LastAt, Marked: o.MarkedAt(s.Now()), LimitBytes: protocol.MaxMessageBytes}
		if !o.PreviousAt.IsZero() {
			prev := o.PreviousAt
			ov.PreviousAt = &prev
		}
		v.OversizedMessages = ov
		if ov.Marked {
			v.Warnings = append(v.Warnings, satellite.OversizedMessagesWarning)
		}
	}
	return v
}

// NewSatellite is what creating a satellite takes.
type NewSatellite struct {
	Name             string
	Region           string
	Tags             map[string]string
	OfflineThreshold time.Duration // 0: the default
}

// CreateSatellite stores a new satellite and returns it with its plaintext token,
// which is never shown again (only its bcrypt hash is kept).
func (s *Service) CreateSatellite(ctx context.Context, n NewSatellite) (View, string, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return View{}, "", satellite.Wrap(err, satellite.EINTERNAL, "generate id")
	}
	tok, err := token.New()
	if err != nil {
		return View{}, "", err
	}
	hash, err := token.Hash(tok)
	if err != nil {
		return View{}, "", err
	}
	sat := satellite.Satellite{ID: id.String(), Name: n.Name, Region: n.Region, Tags: n.Tags, TokenHash: hash, CreatedAt: s.Now().UTC(), OfflineThreshold: n.OfflineThreshold}
	if err := s.Registry.CreateSatellite(ctx, sat); err != nil {
		return View{}, "", err
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "satellite created", slog.String("satelliteId", sat.ID))
	return s.view(sat, nil), tok, nil
}

// SatellitesPage is one page of GET /satellites.
type SatellitesPage struct {
	Satellites []View `json:"satellites"`
	// NextToken asks for the next page; absent on the last one.
	NextToken string `json:"nextToken,omitempty"`
}

// ListSatellites returns one page of the fleet in satellite id order: at most
// p.Limit satellites, fewer when their views would take more than
// MaxPageBytes or the invocation's deadline is near. Errors are the
// registry's (EINTERNAL).
func (s *Service) ListSatellites(ctx context.Context, p PageRequest) (SatellitesPage, error) {
	page, err := s.Registry.ListSatellites(ctx, p.After, p.Limit)
	if err != nil {
		return SatellitesPage{}, err
	}
	views := make([]View, 0, len(page.Satellites))
	for _, sat := range page.Satellites {
		views = append(views, s.view(sat, nil))
	}
	out := SatellitesPage{Satellites: views, NextToken: pageToken(page.Next)}
	if n := fitting(views, MaxPageBytes-len(`{"satellites":[],"nextToken":""}`)-maxTokenBytes); n < len(views) {
		out.Satellites, out.NextToken = views[:n], pageToken(views[n-1].SatelliteID)
	}
	return out, nil
}

// Satellite returns one satellite with its assignments, capability configs and
// the latest status of each capability.
func (s *Service) Satellite(ctx context.Context, id string) (View, error) {
	sat, assignments, err := s.Registry.Satellite(ctx, id)
	if err != nil {
		return View{}, err
	}
	statuses, err := s.Registry.CapabilityStatuses(ctx, id)
	if err != nil {
		return View{}, err
	}
	if assignments == nil {
		assignments = []satellite.Assignment{}
	}
	v := s.view(sat, assignments)
	configs := make([]CapabilityConfigView, 0, len(sat.CapabilityConfigs))
	for _, c := range sat.CapabilityConfigs {
		configs = append(configs, configView(c))
	}
	statusViews := make([]CapabilityStatusView, 0, len(statuses))
	for _, st := range statuses {
		statusViews = append(statusViews, CapabilityStatusView{Kind: st.Kind, Payload: rawJSON(st.Payload), ReportedAt: st.ReportedAt})
	}
	v.CapabilityConfigs, v.CapabilityStatuses = &configs, &statusViews
	return v, nil
}

// UpdateSatellite changes name, region, tags or threshold.
func (s *Service) UpdateSatellite(ctx context.Context, id string, u satellite.Update) (View, error) {
	sat, err := s.Registry.UpdateSatellite(ctx, id, u)
	if err != nil {
		return View{}, err
	}
	if u.Name != nil || u.Region != nil {
		if err := s.Registry.RelabelConnections(ctx, id, sat.Name, sat.Region, s.Now()); err != nil {
			return View{}, err
		}
	}
	return s.view(sat, nil), nil
}

// OnlineSatellites returns the ids of the satellites online now.
func (s *Service) OnlineSatellites(ctx context.Context) ([]string, error) {
	return s.Registry.OnlineSatelliteIDs(ctx, s.Now())
}

// Rotated is the answer to a token rotation.
type Rotated struct {
	SatelliteID string `json:"satelliteId"`
	// Token is the new token, shown once.
	Token string `json:"token"`
	// ShutdownComplete is false when a live connection could not be sent
	// shutdown and closed. It has no authority left (results and run
	// secrets are refused from the moment of the rotation), and it cannot
	// authenticate again with the old token.
	ShutdownComplete bool `json:"shutdownComplete"`
}

// RotateToken gives a satellite a new token. The old one stops working at
// once, connections that authenticated with it lose their authority at
// once, and they get shutdown and are closed.
func (s *Service) RotateToken(ctx context.Context, id string) (Rotated, error) {
	tok, err := token.New()
	if err != nil {
		return Rotated{}, err
	}
	hash, err := token.Hash(tok)
	if err != nil {
		return Rotated{}, err
	}
	if err := s.Registry.SetTokenHash(ctx, id, hash); err != nil {
		return Rotated{}, err
	}
	out := Rotated{SatelliteID: id, Token: tok, ShutdownComplete: true}
	if err := s.Push.Shutdown(ctx, id, "token rotated"); err != nil {
		// The new token is stored and the old one refused from now on: the
		// caller must get it, or the satellite is locked out.
		out.ShutdownComplete = false
		s.Log.LogAttrs(ctx, slog.LevelError, "shutdown after token rotation incomplete", slog.String("satelliteId", id), slog.String("error", err.Error()))
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "token rotated", slog.String("satelliteId", id))
	return out, nil
}

// DeleteSatellite removes a satellite, its assignments, sync state and
// connection records. It first tombstones the satellite (no token matches
// it, and its connections lose their authority), so a reconnect between
// the shutdown and the deletion cannot authenticate; then shuts its
// connections down; then deletes, recording the satellite.removed edge in
// the same write, and publishes it. The edge is delivered at least once, as every lifecycle
// edge: one this request fails to publish the sweep publishes again.
func (s *Service) DeleteSatellite(ctx context.Context, id string) error {
	if err := s.Registry.SetTokenHash(ctx, id, ""); err != nil {
		return err
	}
	if err := s.Push.Shutdown(ctx, id, "satellite deleted"); err != nil {
		// The satellite is a tombstone already: what the shutdown missed
		// has no authority and cannot come back.
		s.Log.LogAttrs(ctx, slog.LevelError, "shutdown before deletion incomplete", slog.String("satelliteId", id), slog.String("error", err.Error()))
	}
	edge, err := s.Registry.DeleteSatellite(ctx, id, s.Now())
	if err != nil {
		return err
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "satellite deleted", slog.String("satelliteId", id), slog.String("edgeId", edge.ID))
	s.Push.Sender.Publish(ctx, edge)
	return nil
}

// ReplaceAssignments replaces a satellite's assignments and pushes
// config_updated to it when it is connected. From then on it may report
// only for the new set.
func (s *Service) ReplaceAssignments(ctx context.Context, id string, assignments []satellite.Assignment) (View, error) {
	if err := s.Registry.ReplaceAssignments(ctx, id, assignments); err != nil {
		return View{}, err
	}
	if err := s.Push.ConfigUpdated(ctx, id); err != nil {
		// Stored: the satellite gets them on its next authenticate anyway.
		s.Log.LogAttrs(ctx, slog.LevelError, "config_updated not pushed", slog.String("satelliteId", id), slog.String("error", err.Error()))
	}
	return s.Satellite(ctx, id)
}

// Bounds of a package's name (npm's) and version.
const (
	MaxPackageNameLength    = 214
	MaxPackageVersionLength = 64
)

// Package is one script package to publish.
type Package struct {
	Name      string
	Version   string
	Integrity string // optional: checked against Data when given
	Data      []byte
}

// Published reports a publication.
type Published struct {
	LockfileHash string                    `json:"lockfileHash"`
	Entries      []satellite.ManifestEntry `json:"entries"`
	// Refresh is the fan-out job pushing refresh_script_packages, as
	// started.
	Refresh FanoutView `json:"refresh"`
}

func (p Published) location() string { return p.Refresh.location() }

// PublishPackages stores a package set (content-addressed blobs, a manifest, the
// desired lockfile hash) and starts the fan-out job that pushes
// refresh_script_packages to every connected satellite. EINTERNAL when the
// job could not be started: the set is published all the same, and
// satellites get it when they next authenticate.
func (s *Service) PublishPackages(ctx context.Context, packages []Package) (Published, error) {
	if s.Publisher == nil {
		return Published{}, satellite.Errorf(satellite.EUNAVAILABLE, "no script-package store is configured (SCRIPT_PACKAGES_BUCKET)")
	}
	entries := make([]satellite.ManifestEntry, 0, len(packages))
	for _, p := range packages {
		integrity, err := s.Publisher.PutBlob(ctx, p.Data)
		if err != nil {
			return Published{}, err
		}
		entries = append(entries, satellite.ManifestEntry{Name: p.Name, Version: p.Version, Integrity: integrity})
	}
	hash, err := s.Publisher.PutManifest(ctx, entries)
	if err != nil {
		return Published{}, err
	}
	if err := s.Registry.SetDesiredLockfileHash(ctx, hash); err != nil {
		return Published{}, err
	}
	s.Log.LogAttrs(ctx, slog.LevelInfo, "script packages published", slog.String("lockfileHash", hash), slog.Int("packages", len(entries)))
	frame, err := protocol.Encode(protocol.NewRefreshScriptPackages(hash))
	if err != nil {
		return Published{}, err
	}
	job, err := s.Fanout.Start(ctx, fanout.Request{Kind: protocol.TypeRefreshScriptPackages, Subject: hash, Frame: frame})
	if err != nil {
		return Published{}, satellite.Wrap(err, satellite.EINTERNAL, "lockfile "+hash+
			" is published, but its refresh_script_packages push did not start ("+satellite.ErrorMessage(err)+
			"): satellites get it when they next authenticate; publish again to push it now")
	}
	return Published{LockfileHash: hash, Entries: entries, Refresh: fanoutView(job)}, nil
}

// PackagesView is the published set and one page of the satellites' sync
// states.
type PackagesView struct {
	LockfileHash *string                   `json:"lockfileHash"`
	Entries      []satellite.ManifestEntry `json:"entries"`
	Satellites   []SatelliteSync           `json:"satellites"`
	// NextToken asks for the next page of satellites; absent on the last
	// one.
	NextToken string `json:"nextToken,omitempty"`
}

// SatelliteSync is one satellite's reported sync state.
type SatelliteSync struct {
	SatelliteID string         `json:"satelliteId"`
	Name        string         `json:"name"`
	SyncState   *SyncStateView `json:"syncState"`
	UpToDate    bool           `json:"upToDate"`
}

// PackageSet returns the desired lockfile, its manifest and one page of
// the satellites' sync states, in satellite id order (paged as List).
func (s *Service) PackageSet(ctx context.Context, p PageRequest) (PackagesView, error) {
	hash, err := s.Registry.DesiredLockfileHash(ctx)
	if err != nil {
		return PackagesView{}, err
	}
	v := PackagesView{LockfileHash: hash, Entries: []satellite.ManifestEntry{}, Satellites: []SatelliteSync{}}
	if hash != nil && s.Packages != nil {
		entries, err := s.Packages.Manifest(ctx, *hash)
		if err != nil && satellite.ErrorCode(err) != satellite.ENOTFOUND {
			return PackagesView{}, err
		}
		if entries != nil {
			v.Entries = entries
		}
	}
	page, err := s.Registry.ListSatellites(ctx, p.After, p.Limit)
	if err != nil {
		return PackagesView{}, err
	}
	for _, sat := range page.Satellites {
		sv := s.view(sat, nil)
		upToDate := hash != nil && sat.SyncState != nil && sat.SyncState.Status == satellite.SyncReady &&
			sat.SyncState.LockfileHash != nil && *sat.SyncState.LockfileHash == *hash
		v.Satellites = append(v.Satellites, SatelliteSync{SatelliteID: sat.ID, Name: sat.Name, SyncState: sv.SyncState, UpToDate: upToDate})
	}
	v.NextToken = pageToken(page.Next)
	// The published set rides on every page; the satellites get the rest.
	envelope, _ := json.Marshal(PackagesView{LockfileHash: hash, Entries: v.Entries})
	if n := fitting(v.Satellites, MaxPageBytes-len(envelope)-maxTokenBytes); n < len(v.Satellites) {
		v.Satellites, v.NextToken = v.Satellites[:n], pageToken(v.Satellites[n-1].SatelliteID)
	}
	return v, nil
}

// ResultView is one stored result.
type ResultView struct {
	ConfigID      string                `json:"configId"`
	SystemID      string                `json:"systemId"`
	EnvironmentID *string               `json:"environmentId"`
	SatelliteID   string                `json:"satelliteId"`
	Source        string                `json:"source"`
	Status        satellite.CheckStatus `json:"status"`
	LatencyMs     *float64              `json:"latencyMs"`
	Result        any                   `json:"result"`
	ExecutedAt    time.Time             `json:"executedAt"`
	ReceivedAt    time.Time             `json:"receivedAt"`
	// ClockSkewMs is present only on a result dated more than 5 minutes
	// ahead of receivedAt (the satellite's clock runs fast): how far ahead,
	// in milliseconds. Such a result is listed by its receivedAt.
	ClockSkewMs int64 `json:"clockSkewMs,omitempty"`
}

// LatestResults returns the latest limit results of a check, newest first (a
// result dated ahead of the backend's clock by its receipt): of every
// environment, or of environmentID's only when it is not nil.
func (s *Service) LatestResults(ctx context.Context, configID, systemID string, environmentID *string, limit int32) ([]ResultView, error) {
	rs, err := s.Registry.LatestResults(ctx, configID, systemID, environmentID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]ResultView, 0, len(rs))
	for _, r := range rs {
		v := ResultView{ConfigID: r.ConfigID, SystemID: r.SystemID, EnvironmentID: r.EnvironmentID, SatelliteID: r.SatelliteID, Source: r.Source,
			Status: r.Status, LatencyMs: r.LatencyMs, ExecutedAt: r.ExecutedAt, ReceivedAt: r.ReceivedAt, ClockSkewMs: r.ClockSkewMs}
		if r.Detail != nil {
			v.Result = rawJSON(r.Detail)
		}
		out = append(out, v)
	}
	return out, nil
}

// decodeBase64 accepts standard or URL-safe base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("not base64")
}
