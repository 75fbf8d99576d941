// Package localaws starts the AWS stand-ins the local stack and the tests run
// against: DynamoDB Local (the official emulator, a Java program) and an
// S3-compatible server (gofakes3), and creates the template's tables in them.
package localaws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/checkstack/satellite-backend/infra/samtemplate"
)

// DynamoDBLocalDirEnv names the directory holding DynamoDBLocal.jar and
// DynamoDBLocal_lib; by default it is .tools/dynamodb-local in the repository.
const DynamoDBLocalDirEnv = "DYNAMODB_LOCAL_DIR"

// JVMFlagsEnv replaces the JVM flags DynamoDB Local runs with.
const JVMFlagsEnv = "DYNAMODB_LOCAL_JVM_FLAGS"

// defaultJVMFlags bound the heap so the emulator stays small on a laptop.
var defaultJVMFlags = []string{"-Xmx512m"}

// DynamoDBLocalDir returns where DynamoDB Local is installed.
func DynamoDBLocalDir() (string, error) {
	if dir := os.Getenv(DynamoDBLocalDirEnv); dir != "" {
		return dir, nil
	}
	root, err := samtemplate.FindRepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".tools", "dynamodb-local"), nil
}

// DynamoDBLocal is a running DynamoDB Local process.
type DynamoDBLocal struct {
	Endpoint string // http://127.0.0.1:port
	cmd      *exec.Cmd
	done     chan error
	exited   chan struct{}
	exitErr  error
}

// Exited is closed when the emulator's process ends, for whatever reason;
// ExitError then says how.
func (d *DynamoDBLocal) Exited() <-chan struct{} { return d.exited }

// ExitError is how the process ended (valid once Exited is closed).
func (d *DynamoDBLocal) ExitError() error { return d.exitErr }

// DynamoDBOptions configures StartDynamoDB.
type DynamoDBOptions struct {
	// Dir holds the emulator; DynamoDBLocalDir() when empty.
	Dir string
	// Port to listen on; a free one when 0.
	Port int
	// DataDir keeps tables across restarts; in memory when empty.
	DataDir string
	// Output receives the emulator's own output; discarded when nil.
	Output io.Writer
}

// StartDynamoDB starts DynamoDB Local and waits until it answers. The process
// dies with its parent, so an interrupted test leaves nothing behind.
func StartDynamoDB(ctx context.Context, opts DynamoDBOptions) (*DynamoDBLocal, error) {
	if opts.Dir == "" {
		dir, err := DynamoDBLocalDir()
		if err != nil {
			return nil, err
		}
		opts.Dir = dir
	}
	jar := filepath.Join(opts.Dir, "DynamoDBLocal.jar")
	if _, err := os.Stat(jar); err != nil {
		return nil, fmt.Errorf("DynamoDB Local is not installed at %s (run `make tools`): %w", opts.Dir, err)
	}
	if opts.Port == 0 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		opts.Port = port
	}
	jvm := defaultJVMFlags
	if v := os.Getenv(JVMFlagsEnv); v != "" {
		jvm = strings.Fields(v)
	}
	args := append(append([]string{"-Djava.library.path=" + filepath.Join(opts.Dir, "DynamoDBLocal_lib")}, jvm...),
		"-jar", jar,
		// One database whatever the credentials and region of the caller, so
		// functions started with other credentials see the same tables.
		"-sharedDb",
		// Nothing may leave a developer machine or a CI runner.
		"-disableTelemetry",
		"-port", strconv.Itoa(opts.Port),
	)
	if opts.DataDir != "" {
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			return nil, err
		}
		args = append(args, "-dbPath", opts.DataDir)
	} else {
		args = append(args, "-inMemory")
	}
	cmd := exec.Command("java", args...)
	cmd.Dir = opts.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if opts.Output != nil {
		cmd.Stdout, cmd.Stderr = opts.Output, opts.Output
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start DynamoDB Local: %w", err)
	}
	d := &DynamoDBLocal{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", opts.Port), cmd: cmd, done: make(chan error, 1), exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		d.exitErr = err
		close(d.exited)
		d.done <- err
	}()
	if err := d.waitReady(ctx); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

func (d *DynamoDBLocal) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(d.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
	for {
		_, err := client.ListTables(ctx, &dynamodb.ListTablesInput{})
		if err == nil {
			return nil
		}
		select {
		case exitErr := <-d.done:
			d.done <- exitErr
			return fmt.Errorf("DynamoDB Local exited before it was ready: %v", exitErr)
		case <-ctx.Done():
			return fmt.Errorf("DynamoDB Local at %s not ready: %w", d.Endpoint, errors.Join(ctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Pid is the emulator's process id.
func (d *DynamoDBLocal) Pid() int { return d.cmd.Process.Pid }

// Stop kills the emulator and waits for it to exit.
func (d *DynamoDBLocal) Stop() {
	if d.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
