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

func TestPushRefreshScriptPackagesToEveryAuthenticatedConnection(t *testing.T) {
	h := newHarness(t)
	var live []string
	for _, id := range []string{"sat-a", "sat-b", "sat-c"} {
		live = append(live, h.authenticate(id, h.satellite(id)))
	}
	unauthenticated := h.open()
	dead := h.authenticate("sat-dead", h.satellite("sat-dead"))
	h.mgmt.Drop(dead)

	report, err := h.message.Push.RefreshScriptPackages(ctx, "lock-9")
	if err != nil {
		t.Fatal(err)
	}
	if report.Sent != 3 || report.Gone != 1 || report.Failed != 0 {
		t.Errorf("report = %+v, want 3 sent, 1 gone", report)
	}
	for _, id := range live {
		if got := lastFrame(t, h, id); got["type"] != "refresh_script_packages" || got["lockfileHash"] != "lock-9" {
			t.Errorf("%s got %v", id, got)
		}
	}
	if n := len(h.mgmt.Posts(unauthenticated)); n != 0 {
		t.Errorf("unauthenticated connection got %d frames", n)
	}
	if sat := h.stored("sat-dead"); sat.LastConnectionEvent != satellite.EdgeDisconnected {
		t.Errorf("dead connection's satellite edge = %s, want disconnected", sat.LastConnectionEvent)
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
