//go:build !unix

package testenv

import "time"

// CPUTime is 0 where getrusage does not exist: the cost model then has no
// CPU figure.
func CPUTime() time.Duration { return 0 }
