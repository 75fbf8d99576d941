package app_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/app"
)

// TestDefaultSandboxPolicyIsCheckedAtStart: DEFAULT_SANDBOX_POLICY is read
// compacted; empty means none; anything but a JSON object keeps the
// function from starting, with an error naming the parameter.
func TestDefaultSandboxPolicyIsCheckedAtStart(t *testing.T) {
	base := map[string]string{"SATELLITES_TABLE": "s", "CONNECTIONS_TABLE": "c", "RESULTS_TABLE": "r"}
	with := func(v string) (app.Config, error) {
		return app.LoadConfig(env(merged(base, map[string]string{"DEFAULT_SANDBOX_POLICY": v})))
	}
	cfg, err := with(" { \"network\" : { \"mode\" : \"deny\" } } ")
	if err != nil || string(cfg.DefaultSandboxPolicy) != `{"network":{"mode":"deny"}}` {
		t.Errorf("object: %s, %v", cfg.DefaultSandboxPolicy, err)
	}
	if cfg, err := with(""); err != nil || cfg.DefaultSandboxPolicy != nil {
		t.Errorf("empty: %s, %v; want none", cfg.DefaultSandboxPolicy, err)
	}
	for _, bad := range []string{
		`["deny"]`, `"deny"`, `null`, `{"network":`, `{"a":1}{"b":2}`,
		`{"a":"` + strings.Repeat("x", 16*1024) + `"}`,
		`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	} {
		if _, err := with(bad); err == nil || !strings.Contains(err.Error(), "DEFAULT_SANDBOX_POLICY (the DefaultSandboxPolicy parameter)") {
			t.Errorf("%.30s: %v, want an error naming the parameter", bad, err)
		}
	}

	// The template's default (upstream's shipped profile) starts.
	tpl, err := samtemplate.Load(filepath.Join("..", "..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	def, _ := tpl.Parameters["DefaultSandboxPolicy"].Default.(string)
	cfg, err = with(def)
	if err != nil || !json.Valid(cfg.DefaultSandboxPolicy) || string(cfg.DefaultSandboxPolicy) != def {
		t.Errorf("the template's default: %s, %v", cfg.DefaultSandboxPolicy, err)
	}
	for _, fn := range []string{"MessageFunction", "AdminFunction"} {
		if v, ok := tpl.Environment(fn)["DEFAULT_SANDBOX_POLICY"]; !ok || !strings.Contains(v.(map[string]any)["Ref"].(string), "DefaultSandboxPolicy") {
			t.Errorf("%s's DEFAULT_SANDBOX_POLICY = %v, want the DefaultSandboxPolicy parameter", fn, v)
		}
	}
}
