// Package eventbus is the adapter of satellite.LifecycleSink over Amazon
// EventBridge: one PutEvents entry per lifecycle edge.
package eventbus

import (
	"context"
	"encoding/json"

	"github.com/checkstack/satellite-backend/shared/awsapi"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Source is the EventBridge source of every lifecycle event. Detail types are
// satellite.connected, satellite.disconnected and satellite.heartbeat_lost.
const Source = "checkstack.satellites"

// Bus implements satellite.LifecycleSink.
type Bus struct {
	api      *awsapi.Client
	endpoint string
	name     string
}

var _ satellite.LifecycleSink = (*Bus)(nil)

// New returns a sink that puts events on the named bus. endpoint overrides
// EventBridge's regional endpoint when not empty.
func New(api *awsapi.Client, endpoint, busName string) *Bus {
	return &Bus{api: api, endpoint: api.Endpoint("events", endpoint), name: busName}
}

type putEventsEntry struct {
	EventBusName string   `json:"EventBusName"`
	Source       string   `json:"Source"`
	DetailType   string   `json:"DetailType"`
	Detail       string   `json:"Detail"`
	Resources    []string `json:"Resources"`
	// Time is epoch seconds, as the AWS JSON protocol sends timestamps.
	Time float64 `json:"Time"`
}

type putEventsInput struct {
	Entries []putEventsEntry `json:"Entries"`
}

type putEventsOutput struct {
	FailedEntryCount int `json:"FailedEntryCount"`
	Entries          []struct {
		EventID      string `json:"EventId"`
		ErrorCode    string `json:"ErrorCode"`
		ErrorMessage string `json:"ErrorMessage"`
	} `json:"Entries"`
}

// Emit implements satellite.LifecycleSink. A rejected entry is an error: the
// call succeeds even when EventBridge refuses the event.
func (b *Bus) Emit(ctx context.Context, e satellite.LifecycleEvent) error {
	detail, err := json.Marshal(e.Payload())
	if err != nil {
		return satellite.Wrap(err, satellite.EINTERNAL, "encode lifecycle event")
	}
	in := putEventsInput{Entries: []putEventsEntry{{
		EventBusName: b.name,
		Source:       Source,
		DetailType:   e.Edge.EventType(),
		Detail:       string(detail),
		Resources:    []string{},
		Time:         float64(e.At.UnixMilli()) / 1000,
	}}}
	var out putEventsOutput
	if err := b.api.JSON11(ctx, "events", "EventBridge", b.endpoint, "AWSEvents.PutEvents", b.name, in, &out); err != nil {
		return satellite.Wrap(err, satellite.EINTERNAL, "put lifecycle event")
	}
	if out.FailedEntryCount > 0 && len(out.Entries) > 0 {
		entry := out.Entries[0]
		return satellite.Errorf(satellite.EINTERNAL, "EventBridge refused %s event: %s %s",
			e.Edge.EventType(), entry.ErrorCode, entry.ErrorMessage)
	}
	if out.FailedEntryCount > 0 {
		return satellite.Errorf(satellite.EINTERNAL, "EventBridge refused %d %s event(s)", out.FailedEntryCount, e.Edge.EventType())
	}
	return nil
}
