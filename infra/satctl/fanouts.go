package satctl

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// fanoutView is a fan-out job as GET /fan-outs/{jobId} shows it.
type fanoutView struct {
	JobID        string     `json:"jobId"`
	Kind         string     `json:"kind"`
	State        string     `json:"state"`
	Error        string     `json:"error"`
	Total        *int       `json:"total"`
	Sent         int        `json:"sent"`
	Gone         int        `json:"gone"`
	Failed       int        `json:"failed"`
	Remaining    *int       `json:"remaining"`
	Late         *counts    `json:"late"`
	Segments     int        `json:"segments"`
	SegmentsDone int        `json:"segmentsDone"`
	CreatedAt    time.Time  `json:"createdAt"`
	UpdatedAt    time.Time  `json:"updatedAt"`
	FinishedAt   *time.Time `json:"finishedAt"`
}

type counts struct{ Sent, Gone, Failed int }

// progress is one line of a job's progress: sent/total.
func (v fanoutView) progress() string {
	total := "?"
	if v.Total != nil {
		total = fmt.Sprint(*v.Total)
	}
	line := fmt.Sprintf("sent %d/%s (%d gone, %d failed; %d/%d segments done)", v.Sent, total, v.Gone, v.Failed, v.SegmentsDone, v.Segments)
	if v.Late != nil && (v.Late.Sent+v.Late.Gone+v.Late.Failed > 0 || v.State == "done") {
		line += fmt.Sprintf("; again to %d late authentication(s)", v.Late.Sent)
	}
	return line
}

// summary is the line a finished job ends with.
func (v fanoutView) summary() string {
	took := ""
	if v.FinishedAt != nil {
		took = " in " + v.FinishedAt.Sub(v.CreatedAt).Round(10*time.Millisecond).String()
	}
	line := fmt.Sprintf("done%s: sent to %d connection(s) (%d gone, %d failed)", took, v.Sent, v.Gone, v.Failed)
	if v.Late != nil {
		line += fmt.Sprintf(", again to %d that authenticated around the change", v.Late.Sent)
	}
	return line
}

// fanoutFlags are how a command that starts a fan-out job follows it.
type fanoutFlags struct {
	noWait  *bool
	timeout *time.Duration
	poll    time.Duration
}

func registerFanoutFlags(fs *flag.FlagSet) fanoutFlags {
	return fanoutFlags{
		noWait:  fs.Bool("no-wait", false, "return once the push is started, without following its progress"),
		timeout: fs.Duration("wait-timeout", 15*time.Minute, "give up following the push after this long (it keeps running)"),
		poll:    500 * time.Millisecond,
	}
}

// errFanoutFailed is a push that did not start on every segment.
var errFanoutFailed = errors.New("push failed")

// follow reads a started job at location until it is done, printing its
// progress as it changes (not with --json), and returns it as last read.
// It fails when the job failed or the wait timed out.
func (e *env) follow(location string, started fanoutView, f fanoutFlags) (json.RawMessage, error) {
	if location == "" {
		location = "/fan-outs/" + url.PathEscape(started.JobID)
	}
	deadline := time.Now().Add(*f.timeout)
	last := ""
	for {
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, http.MethodGet, location, nil, nil, &raw); err != nil {
			return nil, err
		}
		var v fanoutView
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		if line := v.progress(); line != last && !e.json {
			fmt.Fprintln(e.out, "  "+line)
			last = line
		}
		switch v.State {
		case "done":
			if !e.json {
				fmt.Fprintln(e.out, v.Kind+" "+v.summary())
			}
			return raw, nil
		case "failed":
			return raw, fmt.Errorf("%w: %s (the segments that started run to their end; satellites get the change when they next authenticate)", errFanoutFailed, v.Error)
		}
		if time.Now().After(deadline) {
			return raw, fmt.Errorf("still running after %s: satctl fan-out %s shows its progress", *f.timeout, v.JobID)
		}
		select {
		case <-e.ctx.Done():
			return raw, e.ctx.Err()
		case <-time.After(f.poll):
		}
	}
}

// cmdFanout is `satctl fan-out JOB_ID`.
func cmdFanout(fs *flag.FlagSet) func(*env) error {
	return func(e *env) error {
		if len(e.args) != 1 {
			return usagef("give exactly one fan-out job id")
		}
		var raw json.RawMessage
		if err := e.client.Do(e.ctx, http.MethodGet, "/fan-outs/"+url.PathEscape(e.args[0]), nil, nil, &raw); err != nil {
			return err
		}
		if e.json {
			return e.printJSON(raw)
		}
		var v fanoutView
		_ = json.Unmarshal(raw, &v)
		fmt.Fprintf(e.out, "%s %s: %s\n", v.Kind, v.JobID, v.State)
		if v.Error != "" {
			fmt.Fprintln(e.out, "  "+v.Error)
		}
		fmt.Fprintln(e.out, "  "+v.progress())
		if v.State == "done" {
			fmt.Fprintln(e.out, "  "+v.summary())
		} else {
			fmt.Fprintf(e.out, "  started %s, last progress %s\n", v.CreatedAt.UTC().Format(time.RFC3339), v.UpdatedAt.UTC().Format(time.RFC3339))
		}
		return nil
	}
}

// withJob returns an answer's JSON with field replaced by the job as last
// read, for --json output after following it.
func withJob(answer json.RawMessage, field string, job json.RawMessage) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(answer, &m); err != nil {
		return nil, err
	}
	m[field] = job
	return json.Marshal(m)
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, strings.TrimSuffix(word, "s"))
}
