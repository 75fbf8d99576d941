package doccheck_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

var (
	link       = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	inlineCode = regexp.MustCompile("`[^`]*`")
)

// documents are README.md and every Markdown file under docs/ (the example
// consumer's dependencies excepted).
func documents(t *testing.T, root string) []string {
	t.Helper()
	docs := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "node_modules" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			docs = append(docs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// anchors returns the anchors GitHub gives a Markdown file's headings:
// lower case, punctuation other than '-' and '_' dropped, spaces as '-',
// and a repeated anchor suffixed -1, -2, ...
func anchors(text string) map[string]bool {
	out, seen := map[string]bool{}, map[string]int{}
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(heading) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[a+"-"+strconv.Itoa(n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

func TestDocumentLinksResolve(t *testing.T) {
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{}
	read := func(path string) (string, bool) {
		if s, ok := texts[path]; ok {
			return s, true
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", false
		}
		texts[path] = string(b)
		return string(b), true
	}
	checked := 0
	for _, doc := range documents(t, root) {
		text, _ := read(doc)
		fenced := false
		for n, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "```") {
				fenced = !fenced
			}
			if fenced {
				continue
			}
			for _, m := range link.FindAllStringSubmatch(inlineCode.ReplaceAllString(line, ""), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				path := doc
				if file != "" {
					path = filepath.Join(filepath.Dir(doc), file)
				}
				where := strings.TrimPrefix(doc, root+"/") + ":" + strconv.Itoa(n+1)
				checked++
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link %s: no such file", where, target)
					continue
				}
				if anchor == "" {
					continue
				}
				if !strings.HasSuffix(path, ".md") {
					t.Errorf("%s: link %s: an anchor into a file that is not Markdown", where, target)
					continue
				}
				body, _ := read(path)
				if !anchors(body)[anchor] {
					t.Errorf("%s: link %s: %s has no heading with that anchor", where, target, strings.TrimPrefix(path, root+"/"))
				}
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d links checked: the link pattern no longer finds the documents' links", checked)
	}
	t.Logf("%d links checked", checked)
}

func TestAnchorsFollowGitHub(t *testing.T) {
	got := anchors("# Checkstack satellite backend\n## What `make dev` runs, and why?\n```\n# not a heading\n```\n## Caches\n### Caches\n")
	for _, want := range []string{"checkstack-satellite-backend", "what-make-dev-runs-and-why", "caches", "caches-1"} {
		if !got[want] {
			t.Errorf("no anchor %q in %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Error("a line in a code block made an anchor")
	}
}
