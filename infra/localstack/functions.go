package localstack

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/checkstack/satellite-backend/shared/app"
)

// handlers are the Lambda handlers of each functions/<dir>, for running them
// in this process. Which template function a directory is comes from the
// Makefile's build-<LogicalId> targets, the same ones `sam build` runs.
var handlers = map[string]func(*app.App) any{
	"connect":    func(a *app.App) any { return a.WebSocket.Connect },
	"message":    func(a *app.App) any { return a.WebSocket.Message },
	"disconnect": func(a *app.App) any { return a.WebSocket.Disconnect },
	"sweep":      func(a *app.App) any { return a.Sweep.Handle },
	"admin":      func(a *app.App) any { return a.Admin.Handle },
}

var buildTarget = regexp.MustCompile(`(?m)^build-(\w+):.*\n\t.*-o \$\(ARTIFACTS_DIR\)/bootstrap \./functions/(\w+)$`)

// functionDirs maps each template function to its functions/<dir>, read from
// the Makefile.
func functionDirs(root string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		return nil, err
	}
	dirs := map[string]string{}
	for _, m := range buildTarget.FindAllStringSubmatch(string(b), -1) {
		dirs[m[1]] = m[2]
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("no build-<Function> targets in the Makefile")
	}
	return dirs, nil
}
