package localstack_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/checkstack/satellite-backend/infra/testenv"
	"github.com/checkstack/satellite-backend/shared/metrics"
)

// documentedMetric is one row of the metrics table in docs/OPERATIONS.md.
type documentedMetric struct {
	unit       string
	dimensions []string
	values     []string
}

var backticked = regexp.MustCompile("`([^`]+)`")

// documentedMetrics reads the table under "## Metrics" in docs/OPERATIONS.md.
func documentedMetrics(t *testing.T) map[string]documentedMetric {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Metrics\n")
	if !ok {
		t.Fatal("docs/OPERATIONS.md has no Metrics section")
	}
	section, _, _ = strings.Cut(section, "\n#")
	out := map[string]documentedMetric{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 7 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		row := documentedMetric{unit: strings.TrimSpace(cells[2])}
		for _, m := range backticked.FindAllStringSubmatch(cells[3], -1) {
			row.dimensions = append(row.dimensions, m[1])
		}
		for _, m := range backticked.FindAllStringSubmatch(cells[4], -1) {
			row.values = append(row.values, m[1])
		}
		out[name] = row
	}
	return out
}

// checkMetricsAgainstDocs decodes every EMF line in logs and checks each
// metric's namespace, name, unit, dimensions and dimension values against
// the metrics table of docs/OPERATIONS.md (and the table against the code's
// catalogue). want
// names metrics the run must have produced, as "Name" or "Name Dim=value".
func checkMetricsAgainstDocs(t *testing.T, logs string, want []string) {
	t.Helper()
	documented := documentedMetrics(t)
	for _, m := range metrics.All {
		row, ok := documented[m.Name]
		wantDims := []string{metrics.StackDimension}
		if m.Dimension != "" {
			wantDims = append(wantDims, m.Dimension)
		}
		switch {
		case !ok:
			t.Errorf("docs/OPERATIONS.md's metrics table does not list %s", m.Name)
		case row.unit != string(m.Unit) || !slices.Equal(row.dimensions, wantDims):
			t.Errorf("docs/OPERATIONS.md lists %s as %s %v; the code emits %s %v", m.Name, row.unit, row.dimensions, m.Unit, wantDims)
		case m.Name == metrics.Frames.Name:
			// "each inbound frame type, `invalid`"
			if !slices.Equal(row.values, []string{metrics.FrameInvalid}) {
				t.Errorf("docs/OPERATIONS.md lists Frames values %v", row.values)
			}
		case !slices.Equal(row.values, m.Values):
			t.Errorf("docs/OPERATIONS.md lists %s values %v; the code emits %v", m.Name, row.values, m.Values)
		}
	}
	catalogue := map[string]metrics.Metric{}
	for _, m := range metrics.All {
		catalogue[m.Name] = m
	}
	if len(documented) != len(metrics.All) {
		t.Errorf("docs/OPERATIONS.md lists %d metrics, the code emits %d", len(documented), len(metrics.All))
	}

	seen := map[string]bool{}
	lines := 0
	for _, line := range strings.Split(logs, "\n") {
		start := strings.Index(line, "{")
		if start < 0 || !strings.Contains(line, `"_aws":`) {
			continue
		}
		decoded, ok := metrics.Decode([]byte(line[start:]))
		if !ok {
			t.Errorf("metric line does not decode: %s", line)
			continue
		}
		lines++
		for _, m := range decoded {
			row, ok := documented[m.Name]
			if !ok || m.Namespace != metrics.Namespace {
				t.Errorf("undocumented metric %s/%s", m.Namespace, m.Name)
				continue
			}
			var dims []string
			for d := range m.Dimensions {
				dims = append(dims, d)
			}
			sort.Strings(dims)
			documentedDims := append([]string(nil), row.dimensions...)
			sort.Strings(documentedDims)
			if !slices.Equal(dims, documentedDims) || string(m.Unit) != row.unit {
				t.Errorf("%s emitted as %s %v, docs/OPERATIONS.md says %s %v", m.Name, m.Unit, dims, row.unit, row.dimensions)
			}
			seen[m.Name] = true
			for d, v := range m.Dimensions {
				if d == metrics.StackDimension {
					continue
				}
				if !slices.Contains(catalogue[m.Name].Values, v) {
					t.Errorf("%s %s=%s is not among its documented values %v", m.Name, d, v, catalogue[m.Name].Values)
				}
				seen[m.Name+" "+d+"="+v] = true
			}
		}
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("the run emitted no %s (%d metric lines)", w, lines)
		}
	}
}
