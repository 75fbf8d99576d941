// Package eventbus is the adapter of satellite.LifecycleSink over Amazon
// EventBridge: one PutEvents entry per lifecycle edge.
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
// satellite.connected, satellite.disconnected and satellite.heartbeat_lost.
const Source = "checkstack.satellites"

// API is the part of the EventBridge client the bus calls.
type API interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Bus implements satellite.LifecycleSink.
type Bus struct {
	api  API
	name string
}

var _ satellite.LifecycleSink = (*Bus)(nil)

// New returns a sink that puts events on the named bus.
func New(api API, busName string) *Bus { return &Bus{api: api, name: busName} }

// Emit implements satellite.LifecycleSink. A rejected entry is an error: the
// SDK call succeeds even when EventBridge refuses the event.
func (b *Bus) Emit(ctx context.Context, e satellite.LifecycleEvent) error {
	detail, err := json.Marshal(e.Payload())
	if err != nil {
		return satellite.Wrap(err, satellite.EINTERNAL, "encode lifecycle event")
	}
	out, err := b.api.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		EventBusName: aws.String(b.name),
		Source:       aws.String(Source),
		DetailType:   aws.String(e.Edge.EventType()),
		Detail:       aws.String(string(detail)),
		Resources:    []string{},
		Time:         aws.Time(e.At),
	}}})
	if err != nil {
		return satellite.Wrap(err, satellite.EINTERNAL, "put lifecycle event")
	}
	if out.FailedEntryCount > 0 && len(out.Entries) > 0 {
		entry := out.Entries[0]
		return satellite.Errorf(satellite.EINTERNAL, "EventBridge refused %s event: %s %s",
			e.Edge.EventType(), aws.ToString(entry.ErrorCode), aws.ToString(entry.ErrorMessage))
	}
	if out.FailedEntryCount > 0 {
		return satellite.Errorf(satellite.EINTERNAL, "EventBridge refused %d %s event(s)", out.FailedEntryCount, e.Edge.EventType())
	}
	return nil
}
