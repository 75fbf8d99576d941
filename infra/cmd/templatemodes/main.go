// Command templatemodes writes template.yaml and its nested templates
// (the satellite endpoint, the table capacity) once per deployment mode
// (no custom domain, a custom domain, a custom domain with Route 53
// records, a new account, each way of treating the account's API Gateway
// logging role, connectivity notifications, the partitions without
// CloudFront, provisioned capacity, no WebSocket access logs), each with
// that mode's parameter values as defaults, and prints one line per file
// to lint: "<mode> <file> <regions>" (regions comma-separated, "-" for the
// linter's default). .ci/run lints every line with samlint, so every mode
// passes the SAM transform and cfn-lint.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// A mode is one way operators deploy the stack.
type mode struct {
	name string
	// main are the parameter values of template.yaml.
	main map[string]string
	// nested are the parameter values of the nested templates linted in
	// this mode, by path (those the stack creates there); every nested
	// template is written all the same, for the linter follows TemplateURL.
	nested map[string]map[string]string
	// regions, when set, lint in these regions instead of the default.
	regions []string
}

// The nested templates, relative to the repository root.
const (
	endpointTemplate = "infra/templates/satellite-endpoint.yaml"
	capacityTemplate = "infra/templates/table-capacity.yaml"
)

var nestedTemplates = []string{endpointTemplate, capacityTemplate}

// endpoint lints the satellite endpoint's template with values.
func endpoint(values map[string]string) map[string]map[string]string {
	return map[string]map[string]string{endpointTemplate: values}
}

const (
	domain      = "satellites.example.com"
	certificate = "arn:aws:acm:us-east-1:123456789012:certificate/0b1c2d3e-1111-2222-3333-0123456789ab"
	zone        = "Z0123456789ABCDEFGHIJ"
)

var modes = []mode{
	{name: "default", main: map[string]string{}, nested: endpoint(map[string]string{})},
	{
		name:   "custom-domain",
		main:   map[string]string{"SatelliteDomainName": domain, "CertificateArn": certificate},
		nested: endpoint(map[string]string{"DomainName": domain, "CertificateArn": certificate}),
	},
	{
		name:   "custom-domain-dns",
		main:   map[string]string{"SatelliteDomainName": domain, "CertificateArn": certificate, "HostedZoneId": zone},
		nested: endpoint(map[string]string{"DomainName": domain, "CertificateArn": certificate, "HostedZoneId": zone}),
	},
	// A new account: a concurrency quota too small for any reservation
	// (and no API Gateway CloudWatch Logs role yet, which the default,
	// auto, sets).
	{name: "new-account", main: map[string]string{"ConnectReservedConcurrency": "0", "MessageReservedConcurrency": "0"}},
	// The other ways of treating the account's API Gateway CloudWatch
	// Logs role (the default is auto): set the stack's whatever the
	// account has, or touch nothing.
	{name: "logging-role-create", main: map[string]string{"ApiGatewayLoggingRole": "create"}},
	{name: "logging-role-existing", main: map[string]string{"ApiGatewayLoggingRole": "existing"}},
	// Connectivity notifications on: their rules, topic, key and
	// subscription exist.
	{name: "connectivity-notifications", main: map[string]string{"ConnectivityNotificationEmail": "ops@example.com"}},
	// No CloudFront (Functions) there: the stack deploys without the
	// satellite endpoint.
	{name: "other-partitions", main: map[string]string{}, regions: []string{"cn-north-1", "us-gov-west-1"}},
	// Provisioned capacity: every table and index provisioned, and the
	// table capacity nested stacks that scale them.
	{
		name:   "provisioned",
		main:   map[string]string{"CapacityMode": "PROVISIONED"},
		nested: map[string]map[string]string{capacityTemplate: {}},
	},
	// No WebSocket access logs (and no point-in-time recovery of
	// results): no log group, nothing of the account's logging role.
	{name: "lean-logs", main: map[string]string{"WebSocketAccessLogs": "OFF", "ResultsPointInTimeRecovery": "false"}},
}

func main() {
	out := flag.String("out", ".build/template-modes", "directory to write the rendered templates into")
	flag.Parse()
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		fail(err)
	}
	for _, m := range modes {
		dir := filepath.Join(*out, m.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fail(err)
		}
		regions := "-"
		if len(m.regions) > 0 {
			regions = strings.Join(m.regions, ",")
		}
		// The nested templates keep their paths beside template.yaml:
		// the linter follows TemplateURL and checks the parameters
		// passed.
		type file struct {
			src    string
			values map[string]string
			lint   bool
		}
		files := []file{{"template.yaml", m.main, true}}
		for _, src := range nestedTemplates {
			values, lint := m.nested[src]
			files = append(files, file{src, values, lint})
		}
		for _, f := range files {
			src, err := os.ReadFile(filepath.Join(root, f.src))
			if err != nil {
				fail(err)
			}
			rendered, err := samtemplate.WithDefaults(src, f.values)
			if err != nil {
				fail(fmt.Errorf("%s, mode %s: %w", f.src, m.name, err))
			}
			dst := filepath.Join(dir, f.src)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				fail(err)
			}
			if err := os.WriteFile(dst, rendered, 0o644); err != nil {
				fail(err)
			}
			if f.lint {
				fmt.Println(m.name, dst, regions)
			}
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "templatemodes:", err)
	os.Exit(1)
}
