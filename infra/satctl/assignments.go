package satctl

import (
	"encoding/json"
	"flag"
	"io"
	"net/url"
	"os"
)

// cmdAssign is `satctl assign ID --file FILE`.
func cmdAssign(fs *flag.FlagSet) func(*env) error {
	file := fs.String("file", "", `JSON array of assignments ("-": stdin)`)
	return func(e *env) error {
		id, err := e.id()
		if err != nil {
			return err
		}
		if *file == "" {
			return usagef("--file is required")
		}
		var b []byte
		if *file == "-" {
			b, err = io.ReadAll(e.stdin)
		} else {
			b, err = os.ReadFile(*file)
		}
		if err != nil {
			return err
		}
		var assignments json.RawMessage
		var wrapped struct {
			Assignments json.RawMessage `json:"assignments"`
		}
		switch {
		case json.Unmarshal(b, &wrapped) == nil && wrapped.Assignments != nil:
			assignments = wrapped.Assignments
		case json.Valid(b):
			assignments = b
		default:
			return usagef("%s is not JSON", *file)
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, "PUT", "/satellites/"+url.PathEscape(id)+"/assignments", nil, map[string]any{"assignments": assignments}, &raw); err != nil {
			return err
		}
		return e.printSatellite(raw)
	}
}
