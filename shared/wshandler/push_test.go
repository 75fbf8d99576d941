package wshandler_test

import (
	"slices"
	"testing"

	"github.com/checkstack/satellite-backend/shared/satellite"
)

func TestPushConfigUpdated(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-cfg", assignment(t, "cfg-1", "sys-1"))
	h.satellite("sat-offline")
	id := h.authenticate("sat-cfg", tok)
	if err := h.env.Registry().SetDesiredLockfileHash(ctx, "lock-7"); err != nil {
		t.Fatal(err)
	}
	h.assign("sat-cfg", assignment(t, "cfg-2", "sys-2"))

	if err := h.message.Push.ConfigUpdated(ctx, "sat-cfg"); err != nil {
		t.Fatal(err)
	}
	got := lastFrame(t, h, id)
	assignments, _ := got["assignments"].([]any)
	if got["type"] != "config_updated" || len(assignments) != 1 || assignments[0].(map[string]any)["configId"] != "cfg-2" || got["scriptPackagesLockfileHash"] != "lock-7" {
		t.Errorf("config_updated = %v", got)
	}
	if err := h.message.Push.ConfigUpdated(ctx, "sat-offline"); err != nil {
		t.Errorf("push to a satellite with no connection: %v", err)
	}
	if err := h.message.Push.ConfigUpdated(ctx, "sat-nobody"); satellite.ErrorCode(err) != satellite.ENOTFOUND {
		t.Errorf("push to unknown satellite: %v, want ENOTFOUND", err)
	}
}

func TestPushShutdownClosesEveryConnectionOfTheSatellite(t *testing.T) {
	h := newHarness(t)
	tok := h.satellite("sat-stop")
	first := h.authenticate("sat-stop", tok)
	second := h.authenticate("sat-stop", tok)
	bystander := h.authenticate("sat-keep", h.satellite("sat-keep"))

	if err := h.message.Push.Shutdown(ctx, "sat-stop", "token rotated"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{first, second} {
		if got := lastFrame(t, h, id); got["type"] != "shutdown" || got["reason"] != "token rotated" || !h.mgmt.Closed(id) {
			t.Errorf("%s: last frame %v, closed %v; want shutdown then closed", id, got, h.mgmt.Closed(id))
		}
	}
	if h.mgmt.Closed(bystander) || slices.ContainsFunc(h.mgmt.Frames(t, bystander), func(f map[string]any) bool { return f["type"] == "shutdown" }) {
		t.Errorf("another satellite's connection was shut down")
	}
}
