package localstack

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/checkstack/satellite-backend/shared/app"
)

// handlers build the Lambda handler of each functions/<dir> for running it
// in this process, with the same constructor its main.go calls. Which
// template function a directory is comes from the Makefile's
// build-<LogicalId> targets, the same ones `sam build` runs.
var handlers = map[string]func(app.Config, aws.Config, app.Options) (any, error){
	"connect": func(c app.Config, a aws.Config, o app.Options) (any, error) {
		h, err := app.NewConnect(c, a, o)
		if err != nil {
			return nil, err
		}
		return h.Connect, nil
	},
	"message": func(c app.Config, a aws.Config, o app.Options) (any, error) {
		h, err := app.NewMessage(c, a, o)
		if err != nil {
			return nil, err
		}
		return h.Message, nil
	},
	"disconnect": func(c app.Config, a aws.Config, o app.Options) (any, error) {
		h, err := app.NewDisconnect(c, a, o)
		if err != nil {
			return nil, err
		}
		return h.Disconnect, nil
	},
	"sweep": func(c app.Config, a aws.Config, o app.Options) (any, error) {
		h, err := app.NewSweep(c, a, o)
		if err != nil {
			return nil, err
		}
		return h.Handle, nil
	},
	"admin": func(c app.Config, a aws.Config, o app.Options) (any, error) {
		h, err := app.NewAdmin(c, a, o)
		if err != nil {
			return nil, err
		}
		return h.Handle, nil
	},
	"fanout": func(c app.Config, a aws.Config, o app.Options) (any, error) {
		w, err := app.NewFanout(c, a, o)
		if err != nil {
			return nil, err
		}
		return w.Handle, nil
	},
	"feed": func(c app.Config, a aws.Config, o app.Options) (any, error) {
		h, err := app.NewFeed(c, a, o)
		if err != nil {
			return nil, err
		}
		return h.Handle, nil
	},
}

var buildTarget = regexp.MustCompile(`(?m)^build-(\w+):.*\n\t.*-o \$\(ARTIFACTS_DIR\)/bootstrap \./functions/(\w+)$`)

// FunctionDirs maps each template function to its functions/<dir>, read from
// the Makefile.
func FunctionDirs(root string) (map[string]string, error) {
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
