// Package eventbus is the adapter of satellite.LifecycleSink over Amazon
// EventBridge: one PutEvents entry per lifecycle edge, up to ten per
// request.
package eventbus

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

// Source is the EventBridge source of every lifecycle event. Detail types are
// satellite.connected, satellite.disconnected, satellite.heartbeat_lost and
// satellite.removed.
const Source = "checkstack.satellites"

// API is the part of the EventBridge client a Bus calls.
type API interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

var _ API = (*eventbridge.Client)(nil)

// Bus implements satellite.LifecycleSink.
type Bus struct {
	api  API
	name string
}

var _ satellite.BatchLifecycleSink = (*Bus)(nil)

// New returns a sink that puts events on the named bus through api.
func New(api API, busName string) *Bus {
	return &Bus{api: api, name: busName}
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
	in := &eventbridge.PutEventsInput{Entries: make([]types.PutEventsRequestEntry, 0, len(es))}
	for _, e := range es {
		detail, err := json.Marshal(e.Payload())
		if err != nil {
			return all(satellite.Wrap(err, satellite.EINTERNAL, "encode lifecycle event"))
		}
		in.Entries = append(in.Entries, types.PutEventsRequestEntry{
			EventBusName: aws.String(b.name),
			Source:       aws.String(Source),
			DetailType:   aws.String(e.Edge.EventType()),
			Detail:       aws.String(string(detail)),
			Resources:    []string{},
			Time:         aws.Time(e.At),
		})
	}
	out, err := b.api.PutEvents(ctx, in)
	if err != nil {
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
		if aws.ToString(entry.ErrorCode) != "" || aws.ToString(entry.EventId) == "" {
			errs[i] = satellite.Errorf(satellite.EINTERNAL, "EventBridge refused %s event: %s %s",
				es[i].Edge.EventType(), aws.ToString(entry.ErrorCode), aws.ToString(entry.ErrorMessage))
		}
	}
	return errs
}
