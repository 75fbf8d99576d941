package samtemplate_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// scaling is the auto scaling of one capacity (a table's or an index's
// reads or writes) as a deployment creates it.
type scaling struct {
	min, max string
	policies []string // "<policy type> <metric> <target value>"
	role     bool     // the scalable target names a RoleARN
}

// autoScaling returns the scalable targets the deployment creates through
// its table capacity nested stacks, keyed "<table>[/<index>] read|write",
// the table by its logical id in template.yaml.
func autoScaling(t *testing.T, root string, d *deployment) map[string]*scaling {
	t.Helper()
	out := map[string]*scaling{}
	for _, id := range d.tpl.ResourcesOfType("AWS::CloudFormation::Stack") {
		url, _ := d.tpl.Resources[id].Properties["TemplateURL"].(string)
		if !strings.HasSuffix(url, "/table-capacity.yaml") || !d.exists(t, id) {
			continue
		}
		nested, err := samtemplate.Load(filepath.Join(root, url))
		if err != nil {
			t.Fatal(err)
		}
		// What the parent passes: a parameter's value, a literal, or for
		// a table of the parent its logical id.
		values := map[string]string{}
		given, _ := d.pick(t, d.tpl.Resources[id].Properties["Parameters"]).(map[string]any)
		for name, v := range given {
			if _, ok := nested.Parameters[name]; !ok {
				t.Errorf("%s passes %s, which %s does not declare", id, name, url)
				continue
			}
			ref, isRef := samtemplate.Ref(v)
			switch {
			case isRef && d.tpl.Resources[ref].Type == "AWS::DynamoDB::Table":
				values[name] = ref
			case isRef:
				value, ok := d.Parameter(ref)
				if !ok {
					t.Fatalf("%s passes %s = !Ref %s, which has no value", id, name, ref)
				}
				values[name] = value
			default:
				values[name] = fmt.Sprint(v)
			}
		}
		for name, p := range nested.Parameters {
			if _, ok := values[name]; !ok && p.Default == nil {
				t.Errorf("%s does not pass %s, which has no default", id, name)
			}
		}
		nd := deploy(t, nested, values)
		sub := func(v any) string {
			s, ok := samtemplate.Sub(v)
			if !ok {
				t.Fatalf("%s: %v is not a !Sub", id, v)
			}
			for _, name := range samtemplate.SubRefs(s) {
				value, _ := nd.Parameter(name)
				s = strings.ReplaceAll(s, "${"+name+"}", value)
			}
			return s
		}
		param := func(v any) string {
			ref, _ := samtemplate.Ref(v)
			value, ok := nd.Parameter(ref)
			if !ok {
				t.Fatalf("%s: %v is not a parameter of %s", id, v, url)
			}
			return value
		}
		targets := map[string]string{} // nested logical id -> key
		for _, tid := range nested.ResourcesOfType("AWS::ApplicationAutoScaling::ScalableTarget") {
			if !nd.exists(t, tid) {
				continue
			}
			p := nd.pick(t, nested.Resources[tid].Properties).(map[string]any)
			resource := sub(p["ResourceId"])
			dimension, _ := p["ScalableDimension"].(string)
			key := strings.Replace(strings.TrimPrefix(resource, "table/"), "/index/", "/", 1)
			switch {
			case p["ServiceNamespace"] != "dynamodb":
				t.Errorf("%s %s: ServiceNamespace %v", id, tid, p["ServiceNamespace"])
			case strings.Contains(resource, "/index/") && strings.HasPrefix(dimension, "dynamodb:index:"),
				!strings.Contains(resource, "/index/") && strings.HasPrefix(dimension, "dynamodb:table:"):
			default:
				t.Errorf("%s %s: dimension %s of %s", id, tid, dimension, resource)
			}
			switch {
			case strings.HasSuffix(dimension, ":ReadCapacityUnits"):
				key += " read"
			case strings.HasSuffix(dimension, ":WriteCapacityUnits"):
				key += " write"
			}
			if out[key] != nil {
				t.Errorf("%s is scaled twice", key)
			}
			_, role := p["RoleARN"]
			out[key] = &scaling{min: param(p["MinCapacity"]), max: param(p["MaxCapacity"]), role: role}
			targets[tid] = key
		}
		for _, pid := range nested.ResourcesOfType("AWS::ApplicationAutoScaling::ScalingPolicy") {
			if !nd.exists(t, pid) {
				continue
			}
			p := nd.pick(t, nested.Resources[pid].Properties).(map[string]any)
			target, _ := samtemplate.Ref(p["ScalingTargetId"])
			key, ok := targets[target]
			if !ok {
				t.Errorf("%s %s scales %v, not a scalable target this deployment creates", id, pid, p["ScalingTargetId"])
				continue
			}
			cfg, _ := p["TargetTrackingScalingPolicyConfiguration"].(map[string]any)
			metric, _ := cfg["PredefinedMetricSpecification"].(map[string]any)
			out[key].policies = append(out[key].policies, fmt.Sprint(p["PolicyType"], " ", metric["PredefinedMetricType"], " ", param(cfg["TargetValue"])))
		}
	}
	return out
}

// TestCapacityModeScalesEveryTableAndIndex checks CapacityMode: on demand
// (the default) every table and index is billed per request and nothing
// scales; in PROVISIONED mode every table and every index is provisioned
// (DynamoDB wants a ProvisionedThroughput for each), starting at its
// minimum, and its reads and its writes each have a scalable target with
// one target tracking policy at 70 % utilization, between that minimum and
// CapacityMax, and no RoleARN (the DynamoDB service-linked role).
func TestCapacityModeScalesEveryTableAndIndex(t *testing.T) {
	tpl, root := load(t)
	if p := tpl.Parameters["CapacityMode"]; p.Default != "ON_DEMAND" || !slices.Equal(p.AllowedValues, []any{"ON_DEMAND", "PROVISIONED"}) {
		t.Errorf("CapacityMode default %v, allowed %v; want ON_DEMAND of ON_DEMAND, PROVISIONED", p.Default, p.AllowedValues)
	}
	for _, mode := range []string{"ON_DEMAND", "PROVISIONED"} {
		t.Run(mode, func(t *testing.T) {
			d := deploy(t, tpl, map[string]string{"CapacityMode": mode})
			tables, err := d.Tables()
			if err != nil {
				t.Fatal(err)
			}
			scaled := autoScaling(t, root, d)
			maxCapacity, _ := d.Parameter("CapacityMax")
			want := map[string]bool{}
			check := func(key, billing string, units *int64) {
				t.Helper()
				if mode == "ON_DEMAND" {
					if billing != "PAY_PER_REQUEST" || units != nil {
						t.Errorf("%s: billing %s, capacity %v; want PAY_PER_REQUEST without", key, billing, aws.ToInt64(units))
					}
					return
				}
				want[key] = true
				s := scaled[key]
				switch {
				case billing != "PROVISIONED" || units == nil || *units < 1:
					t.Errorf("%s: billing %s, capacity %v; want PROVISIONED with some", key, billing, aws.ToInt64(units))
				case s == nil:
					t.Errorf("%s is not scaled", key)
				case s.min != fmt.Sprint(*units) || s.max != maxCapacity:
					t.Errorf("%s scales from %s to %s; want from its provisioned %d to CapacityMax %s", key, s.min, s.max, *units, maxCapacity)
				}
				if s != nil && s.role {
					t.Errorf("%s: the scalable target names a RoleARN; want the service-linked role", key)
				}
				if s != nil {
					metric := map[bool]string{true: "DynamoDBReadCapacityUtilization", false: "DynamoDBWriteCapacityUtilization"}[strings.HasSuffix(key, " read")]
					if want := []string{"TargetTrackingScaling " + metric + " 70"}; !slices.Equal(s.policies, want) {
						t.Errorf("%s: policies %v, want %v", key, s.policies, want)
					}
				}
			}
			indexes := 0
			for _, tb := range tables {
				pt := tb.ProvisionedThroughput
				if pt == nil {
					pt = &types.ProvisionedThroughput{}
				}
				check(tb.LogicalID+" read", tb.BillingMode, pt.ReadCapacityUnits)
				check(tb.LogicalID+" write", tb.BillingMode, pt.WriteCapacityUnits)
				for _, g := range tb.GlobalSecondaryIndexes {
					indexes++
					gt := g.ProvisionedThroughput
					if gt == nil {
						gt = &types.ProvisionedThroughput{}
					}
					check(tb.LogicalID+"/"+aws.ToString(g.IndexName)+" read", tb.BillingMode, gt.ReadCapacityUnits)
					check(tb.LogicalID+"/"+aws.ToString(g.IndexName)+" write", tb.BillingMode, gt.WriteCapacityUnits)
				}
			}
			if len(tables) != 5 || indexes != 6 {
				t.Errorf("%d tables with %d indexes; the capacity modes were written for 5 with 6", len(tables), indexes)
			}
			for key := range scaled {
				if !want[key] {
					t.Errorf("%s is scaled in %s mode", key, mode)
				}
			}
		})
	}
}

// TestWriteMinimumsFollowTheFleet checks which minimums have a parameter
// of their own: the capacities a fleet uses in proportion to its size and
// interval (heartbeats and results: the Satellites table's writes and
// reads, its live index, the Results table, the Connections table's
// reads), which would otherwise start from CapacityMin after an outage and
// throttle the whole fleet while auto scaling climbs back 43 % at a time.
func TestWriteMinimumsFollowTheFleet(t *testing.T) {
	tpl, _ := load(t)
	d := deploy(t, tpl, map[string]string{"CapacityMode": "PROVISIONED"})
	want := map[string]string{
		"SatellitesTable":               "SatellitesWriteCapacityMin",
		"SatellitesTable/LiveByStaleAt": "LiveIndexWriteCapacityMin",
		"ResultsTable":                  "ResultsWriteCapacityMin",
	}
	wantReads := map[string]string{
		"SatellitesTable":  "SatellitesReadCapacityMin",
		"ConnectionsTable": "ConnectionsReadCapacityMin",
	}
	tables, err := d.Tables()
	if err != nil {
		t.Fatal(err)
	}
	minimum := func(name string) int64 {
		v, _ := d.Parameter(name)
		var n int64
		fmt.Sscan(v, &n)
		return n
	}
	general := minimum("CapacityMin")
	check := func(what, key string, got int64, params map[string]string) {
		param, own := params[key]
		switch {
		case own && got != minimum(param):
			t.Errorf("%s %s start at %d, want %s (%d)", key, what, got, param, minimum(param))
		case own && got <= general:
			t.Errorf("%s %s start at %d, no more than CapacityMin", key, what, got)
		case !own && got != general:
			t.Errorf("%s %s start at %d, want CapacityMin (%d)", key, what, got, general)
		}
	}
	for _, tb := range tables {
		check("writes", tb.LogicalID, aws.ToInt64(tb.ProvisionedThroughput.WriteCapacityUnits), want)
		check("reads", tb.LogicalID, aws.ToInt64(tb.ProvisionedThroughput.ReadCapacityUnits), wantReads)
		for _, g := range tb.GlobalSecondaryIndexes {
			key := tb.LogicalID + "/" + aws.ToString(g.IndexName)
			check("writes", key, aws.ToInt64(g.ProvisionedThroughput.WriteCapacityUnits), want)
			check("reads", key, aws.ToInt64(g.ProvisionedThroughput.ReadCapacityUnits), wantReads)
		}
	}
}
