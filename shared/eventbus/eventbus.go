// Package eventbus is the adapter of satellite.LifecycleSink over Amazon
// EventBridge: one PutEvents entry per lifecycle edge, up to ten per
// request.
package eventbus

import (
	"context"
	"encoding/json"

	"github.com/checkstack/satellite-backend/shared/awsapi"
	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Source is the EventBridge source of every lifecycle event. Detail types are
// satellite.connected, satellite.disconnected, satellite.heartbeat_lost and
// satellite.removed.
const Source = "checkstack.satellites"

// Bus implements satellite.LifecycleSink.
type Bus struct {
	api      *awsapi.Client
	endpoint string
	name     string
}

var _ satellite.BatchLifecycleSink = (*Bus)(nil)

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
	return b.EmitBatch(ctx, []satellite.LifecycleEvent{e})[0]
}

// EmitBatch implements satellite.BatchLifecycleSink: one PutEvents request
// per satellite.MaxLifecycleBatch events. An entry EventBridge refuses is an
// error for its event alone; a failed request is an error for each event of
// it.
func (b *Bus) EmitBatch(ctx context.Context, es []satellite.LifecycleEvent) []error {
	errs := make([]error, len(es))
	for start := 0; start < len(es); start += satellite.MaxLifecycleBatch {
		chunk := es[start:min(len(es), start+satellite.MaxLifecycleBatch)]
		for i, err := range b.put(ctx, chunk) {
			errs[start+i] = err
		}
	}
	return errs
}

func (b *Bus) put(ctx context.Context, es []satellite.LifecycleEvent) []error {
	errs := make([]error, len(es))
	all := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	in := putEventsInput{Entries: make([]putEventsEntry, 0, len(es))}
	for _, e := range es {
		detail, err := json.Marshal(e.Payload())
		if err != nil {
			return all(satellite.Wrap(err, satellite.EINTERNAL, "encode lifecycle event"))
		}
		in.Entries = append(in.Entries, putEventsEntry{
			EventBusName: b.name,
			Source:       Source,
			DetailType:   e.Edge.EventType(),
			Detail:       string(detail),
			Resources:    []string{},
			Time:         float64(e.At.UnixMilli()) / 1000,
		})
	}
	var out putEventsOutput
	if err := b.api.JSON11(ctx, "events", "EventBridge", b.endpoint, "AWSEvents.PutEvents", b.name, in, &out); err != nil {
		return all(satellite.Wrap(err, satellite.EINTERNAL, "put lifecycle event"))
	}
	if out.FailedEntryCount == 0 {
		return errs
	}
	if len(out.Entries) != len(es) {
		// The answer does not say which ones failed: none counts as published.
		return all(satellite.Errorf(satellite.EINTERNAL, "EventBridge refused %d of %d lifecycle event(s)", out.FailedEntryCount, len(es)))
	}
	// Entries answer in the order of the request.
	for i, entry := range out.Entries {
		if entry.ErrorCode != "" || entry.EventID == "" {
			errs[i] = satellite.Errorf(satellite.EINTERNAL, "EventBridge refused %s event: %s %s",
				es[i].Edge.EventType(), entry.ErrorCode, entry.ErrorMessage)
		}
	}
	return errs
}
