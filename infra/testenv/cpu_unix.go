//go:build unix

package testenv

import (
	"syscall"
	"time"
)

// CPUTime is the CPU time, user and system, this process has used so far
// (getrusage RUSAGE_SELF): around a handled frame it measures the frame's
// CPU work in this process, apart from the servers in other processes
// (DynamoDB Local). A figure for the cost model, never a test's assertion.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
