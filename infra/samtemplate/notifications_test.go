package samtemplate_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
	"github.com/checkstack/satellite-backend/shared/eventbus"
)

// TestConnectivityNotificationsAreOptionalRulesToAnEncryptedTopic checks
// the connectivity notifications: off unless ConnectivityNotificationEmail
// is set (and there is a bus); two EventBridge rules on the lifecycle
// events' bus, a warning for heartbeat_lost and an info for the connected
// edge marked recovered, each with a message naming the satellite and its
// region; their topic encrypted with a key of its own that EventBridge may
// use, and published to by those two rules alone (AWS: "Using
// resource-based policies for Amazon EventBridge", Amazon SNS
// permissions, with aws:SourceArn, and no RoleArn on the target of an
// encrypted topic; "Enable compatibility between event sources from AWS
// services and encrypted topics" for the key policy).
func TestConnectivityNotificationsAreOptionalRulesToAnEncryptedTopic(t *testing.T) {
	tpl, _ := load(t)
	const cond = "HasConnectivityNotifications"
	p, ok := tpl.Parameters["ConnectivityNotificationEmail"]
	if !ok || p.Default != "" {
		t.Fatalf("ConnectivityNotificationEmail parameter %+v, want one defaulting to empty (off)", p)
	}
	if got, want := jsonOf(t, tpl.Conditions[cond]),
		`{"Fn::And":[{"Condition":"HasEventBus"},{"Fn::Not":[{"Fn::Equals":[{"Ref":"ConnectivityNotificationEmail"},""]}]}]}`; got != want {
		t.Errorf("%s = %s, want %s", cond, got, want)
	}
	want := map[string]string{
		"HeartbeatLostNotification": "AWS::Events::Rule", "SatelliteRecoveredNotification": "AWS::Events::Rule",
		"ConnectivityTopicKey": "AWS::KMS::Key", "ConnectivityTopic": "AWS::SNS::Topic",
		"ConnectivityTopicPolicy": "AWS::SNS::TopicPolicy", "ConnectivityEmailSubscription": "AWS::SNS::Subscription",
	}
	for id, typ := range want {
		if r := tpl.Resources[id]; r.Type != typ || r.Condition != cond {
			t.Errorf("%s: %s under %q, want %s under %s", id, r.Type, r.Condition, typ, cond)
		}
	}
	for id, r := range tpl.Resources {
		if _, ours := want[id]; !ours && r.Condition == cond {
			t.Errorf("%s is created with the notifications too; the test does not know it", id)
		}
	}

	rules := map[string]struct{ pattern, word string }{
		"HeartbeatLostNotification":      {`{"detail-type":["satellite.heartbeat_lost"],"source":["` + eventbus.Source + `"]}`, "WARNING"},
		"SatelliteRecoveredNotification": {`{"detail":{"recovered":[true]},"detail-type":["satellite.connected"],"source":["` + eventbus.Source + `"]}`, "INFO"},
	}
	for id, w := range rules {
		r := tpl.Resources[id].Properties
		if bus, _ := samtemplate.Ref(r["EventBusName"]); bus != "EventBusName" {
			t.Errorf("%s is on bus %v, want the lifecycle events' (EventBusName)", id, r["EventBusName"])
		}
		if got := jsonOf(t, r["EventPattern"]); got != w.pattern {
			t.Errorf("%s pattern %s, want %s", id, got, w.pattern)
		}
		targets := asList(r["Targets"])
		if len(targets) != 1 {
			t.Fatalf("%s targets %v, want the topic", id, targets)
		}
		target := targets[0].(map[string]any)
		if topic, _ := samtemplate.Ref(target["Arn"]); topic != "ConnectivityTopic" || target["RoleArn"] != nil {
			t.Errorf("%s target %v, want the connectivity topic without a RoleArn", id, target)
		}
		in, _ := target["InputTransformer"].(map[string]any)
		paths, _ := in["InputPathsMap"].(map[string]any)
		tmpl, _ := in["InputTemplate"].(string)
		if paths["name"] != "$.detail.name" || paths["region"] != "$.detail.region" || paths["satelliteId"] != "$.detail.satelliteId" {
			t.Errorf("%s input paths %v, want the satellite's name, region and id", id, paths)
		}
		if !strings.HasPrefix(tmpl, `"`+w.word+`: satellite <name> (<region>)`) || !strings.HasSuffix(tmpl, `"`) || strings.Contains(tmpl, "\n") {
			t.Errorf("%s template %q, want one quoted line starting %s: satellite <name> (<region>)", id, tmpl, w.word)
		}
	}

	topic := tpl.Resources["ConnectivityTopic"].Properties
	key, _ := samtemplate.Ref(topic["KmsMasterKeyId"])
	if key != "ConnectivityTopicKey" {
		t.Errorf("topic KmsMasterKeyId %v, want its own key", topic["KmsMasterKeyId"])
	}
	kp := tpl.Resources["ConnectivityTopicKey"].Properties
	if kp["EnableKeyRotation"] != true {
		t.Errorf("key rotation %v", kp["EnableKeyRotation"])
	}
	grants := map[string]string{}
	for _, st := range asList(kp["KeyPolicy"].(map[string]any)["Statement"]) {
		st := st.(map[string]any)
		var actions []string
		for _, a := range asList(st["Action"]) {
			actions = append(actions, a.(string))
		}
		if a, ok := st["Action"].(string); ok {
			actions = append(actions, a)
		}
		slices.Sort(actions)
		grants[jsonOf(t, st["Principal"])] = st["Effect"].(string) + " " + strings.Join(actions, ",")
	}
	if got := grants[`{"Service":"events.amazonaws.com"}`]; got != "Allow kms:Decrypt,kms:GenerateDataKey*" {
		t.Errorf("key policy grants EventBridge %q, want kms:Decrypt and kms:GenerateDataKey*", got)
	}
	if len(grants) != 2 {
		t.Errorf("key policy grants %v, want the account and EventBridge only", grants)
	}

	policy := tpl.Resources["ConnectivityTopicPolicy"].Properties
	if topics := asList(policy["Topics"]); len(topics) != 1 {
		t.Errorf("topic policy on %v", topics)
	} else if r, _ := samtemplate.Ref(topics[0]); r != "ConnectivityTopic" {
		t.Errorf("topic policy on %v", topics)
	}
	statements := asList(policy["PolicyDocument"].(map[string]any)["Statement"])
	if len(statements) != 1 {
		t.Fatalf("topic policy statements %v, want one", statements)
	}
	st := statements[0].(map[string]any)
	if jsonOf(t, st["Principal"]) != `{"Service":"events.amazonaws.com"}` || st["Action"] != "sns:Publish" || st["Effect"] != "Allow" {
		t.Errorf("topic policy %v, want EventBridge allowed sns:Publish", st)
	}
	if r, _ := samtemplate.Ref(st["Resource"]); r != "ConnectivityTopic" {
		t.Errorf("topic policy resource %v", st["Resource"])
	}
	var sources []string
	arnEquals, _ := st["Condition"].(map[string]any)["ArnEquals"].(map[string]any)
	for _, v := range asList(arnEquals["aws:SourceArn"]) {
		if r, attr, ok := samtemplate.GetAtt(v); ok && attr == "Arn" {
			sources = append(sources, r)
		}
	}
	slices.Sort(sources)
	if !slices.Equal(sources, []string{"HeartbeatLostNotification", "SatelliteRecoveredNotification"}) {
		t.Errorf("topic policy lets %v publish (condition %v), want exactly the two rules by aws:SourceArn", sources, st["Condition"])
	}

	sub := tpl.Resources["ConnectivityEmailSubscription"].Properties
	endpoint, _ := samtemplate.Ref(sub["Endpoint"])
	topicRef, _ := samtemplate.Ref(sub["TopicArn"])
	if endpoint != "ConnectivityNotificationEmail" || topicRef != "ConnectivityTopic" || sub["Protocol"] != "email" {
		t.Errorf("subscription %v", sub)
	}
	out, _ := tpl.Outputs["ConnectivityTopicArn"].(map[string]any)
	if out["Condition"] != cond {
		t.Errorf("ConnectivityTopicArn output %v, want it under %s", out, cond)
	}
}
