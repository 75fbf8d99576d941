package satellite

import "encoding/json"

// PolicySource says where the sandbox policy in force comes from.
type PolicySource string

// Sources of the sandbox policy in force.
const (
	// PolicySet is a policy an operator set (PUT /sandbox-policy).
	PolicySet PolicySource = "set"
	// PolicyDefault is the deployment's default (the DefaultSandboxPolicy
	// parameter), in force until an operator sets one.
	PolicyDefault PolicySource = "default"
	// PolicyNone means no policy: none was set and the deployment has no
	// default, so satellites run scripts fail-closed.
	PolicyNone PolicySource = "none"
)

// SandboxPolicyInForce returns the sandbox policy satellites are sent and
// where it comes from: the stored policy once an operator set one, and
// until then def, the deployment's default (nil or empty: none).
//
// A set policy always wins, and nothing weaker than it is ever sent: a
// stored policy that does not read back as a JSON object is not replaced by
// def, which may be looser than what was set. Then no policy is in force
// (nil, PolicySet) and the error, EINVALID, says why; satellites stay
// fail-closed until the policy is set again.
func (st Settings) SandboxPolicyInForce(def json.RawMessage) (json.RawMessage, PolicySource, error) {
	if !st.SandboxPolicySet && len(st.SandboxPolicy) == 0 {
		if len(def) == 0 {
			return nil, PolicyNone, nil
		}
		return def, PolicyDefault, nil
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(st.SandboxPolicy, &probe) != nil || probe == nil {
		return nil, PolicySet, Errorf(EINVALID, "the stored sandbox policy is not a JSON object")
	}
	return st.SandboxPolicy, PolicySet, nil
}
