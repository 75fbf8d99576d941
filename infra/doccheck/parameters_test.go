package doccheck_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// TestDeployListsEveryParameter checks the parameter table of
// docs/DEPLOY.md against template.yaml: every parameter has a row, every
// row names a parameter, and a default the row states (in backticks, or
// "empty") is the template's.
func TestDeployListsEveryParameter(t *testing.T) {
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "DEPLOY.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "| parameter | default | meaning |")
	if !ok {
		t.Fatal("docs/DEPLOY.md has no parameter table")
	}
	code := regexp.MustCompile("`([^`]*)`")
	listed := map[string]bool{}
	for _, line := range strings.Split(table, "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(line, " | ")
		if len(cells) < 3 {
			t.Errorf("row %q: not three cells", line)
			continue
		}
		var names, defaults []string
		for _, m := range code.FindAllStringSubmatch(cells[0], -1) {
			names = append(names, m[1])
		}
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			defaults = append(defaults, m[1])
		}
		if cells[1] == "empty" {
			defaults = []string{""}
		}
		for i, name := range names {
			p, ok := tpl.Parameters[name]
			if !ok {
				t.Errorf("docs/DEPLOY.md lists %s, which template.yaml does not declare", name)
				continue
			}
			listed[name] = true
			if len(defaults) == 0 {
				continue // described, not quoted
			}
			want := defaults[0]
			if len(defaults) == len(names) {
				want = defaults[i]
			}
			got := fmt.Sprint(p.Default)
			if f, ok := p.Default.(float64); ok {
				got = strconv.FormatFloat(f, 'f', -1, 64)
			}
			if p.Default == nil || got != want {
				t.Errorf("docs/DEPLOY.md gives %s the default %q, template.yaml %v", name, want, p.Default)
			}
		}
	}
	for name := range tpl.Parameters {
		if !listed[name] {
			t.Errorf("docs/DEPLOY.md's parameter table does not list %s", name)
		}
	}
	if len(listed) < 30 {
		t.Errorf("only %d parameters found in the table: the table's shape changed", len(listed))
	}
}
