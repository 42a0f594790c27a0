// Command go-runtime is a coordinator-mode task runtime for Apache Airflow,
// written by the finalstate project to run its checker against a runtime that
// is not Python. It is not Airflow's Go SDK; it implements the contract in
// runtimes/README.md, the same one impl/coordinator/reference_runtime.py
// implements in Python.
//
//	go-runtime [--pre-fix] --comm=HOST:PORT --logs=HOST:PORT
//
// One try: connect to --comm, then --logs; read StartupDetails; run the task
// registered under the TI's task_id; send one terminal frame; wait for the
// supervisor's answer; exit. --pre-fix reproduces apache/airflow#67797 (no
// retry branch: every failure is TaskState(failed), and the exit is always 0).
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

const (
	exitOK         = 0
	exitFailClosed = 1  // a failure's terminal frame was not acknowledged (also: cannot reach the supervisor)
	exitUsage      = 2  // bad command line
	exitProtocol   = 70 // the first frame is not a usable StartupDetails (EX_SOFTWARE)
	dialTimeout    = 10 * time.Second
	usage          = "usage: go-runtime [--pre-fix] --comm=HOST:PORT --logs=HOST:PORT"
)

type options struct {
	comm, logs string
	preFix     bool
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	opts, help, err := parseArgs(args)
	if help {
		fmt.Println(usage)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-runtime: %v\n%s\n", err, usage)
		return exitUsage
	}
	return try(opts)
}

// parseArgs accepts --comm=HOST:PORT and --logs=HOST:PORT (each exactly once,
// in any order) and --pre-fix; anything else is a usage error.
func parseArgs(args []string) (opts options, help bool, err error) {
	seen := map[string]bool{}
	for _, arg := range args {
		name, value, hasValue := strings.Cut(arg, "=")
		if seen[name] {
			return opts, false, fmt.Errorf("%s given twice", name)
		}
		seen[name] = true
		switch {
		case arg == "-h" || arg == "--help":
			return opts, true, nil
		case arg == "--pre-fix":
			opts.preFix = true
		case hasValue && (name == "--comm" || name == "--logs"):
			if _, port, err := net.SplitHostPort(value); err != nil || port == "" {
				return opts, false, fmt.Errorf("%s wants HOST:PORT, got %q", name, value)
			}
			if name == "--comm" {
				opts.comm = value
			} else {
				opts.logs = value
			}
		default:
			return opts, false, fmt.Errorf("unknown argument %q", arg)
		}
	}
	if opts.comm == "" || opts.logs == "" {
		return opts, false, errors.New("--comm and --logs are both required")
	}
	return opts, false, nil
}

// try runs one try against the supervisor and returns the exit status.
func try(opts options) int {
	comm, err := net.DialTimeout("tcp", opts.comm, dialTimeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-runtime: cannot connect to --comm: %v\n", err)
		return exitFailClosed
	}
	defer comm.Close()
	logs, err := net.DialTimeout("tcp", opts.logs, dialTimeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-runtime: cannot connect to --logs: %v\n", err)
		return exitFailClosed
	}
	defer logs.Close() // nothing is logged: the socket is only held open for the try

	startup, err := readFrame(comm)
	if errors.Is(err, errBroken) {
		fmt.Fprintf(os.Stderr, "go-runtime: no StartupDetails: %v\n", err)
		return exitFailClosed
	}
	if err == nil && (startup.body == nil || startup.body["type"] != "StartupDetails") {
		err = fmt.Errorf("the first frame is not StartupDetails: %s", clip(startup.body, 200))
	}
	var body any
	var failure bool
	if err == nil {
		body, failure, err = execute(startup.body, opts.preFix, time.Now)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-runtime: %v\n", err)
		return exitProtocol
	}
	if deliver(comm, startup.id+1, body) || !failure || opts.preFix {
		return exitOK
	}
	return exitFailClosed
}

// deliver sends the terminal body as request [id, body, nil] and waits for
// the answer; true only when the supervisor answered that id with no error.
func deliver(comm net.Conn, id int64, body any) bool {
	err := writeRequest(comm, id, body)
	var answer frame
	if err == nil {
		answer, err = readFrame(comm)
	}
	switch {
	case err != nil:
	case answer.id != id:
		err = fmt.Errorf("the answer is for request %d, not %d", answer.id, id)
	case answer.third != nil:
		err = fmt.Errorf("the supervisor refused it: %s", clip(answer.third, 300))
	default:
		return true
	}
	fmt.Fprintf(os.Stderr, "go-runtime: terminal frame not acknowledged: %v\n", err)
	return false
}

// clip prints v in at most n bytes (fmt's %.Nv would apply N to every element of a map).
func clip(v any, n int) string {
	s := fmt.Sprint(v)
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// -- the task side -------------------------------------------------------------

// A task returns nil on success, or an error; it may also panic.
type task func() error

// tasks is the registry, by task id, as an SDK dispatches a TI to its task.
var tasks = map[string]task{
	"success": func() error { return nil },
	"error":   func() error { return errors.New("the task returned an error") },
	"panic":   func() error { panic("the task panicked") },
}

// badTIID is a test hook: a TI with this task id is handled as if its id were
// not a UUID (Airflow's supervisor only ever sends UUIDs).
const badTIID = "bad_ti_id"

// runContext is what the runtime needs of StartupDetails.ti_context.
type runContext struct {
	shouldRetry bool
	maxTries    int64
}

// decodeRunContext parses should_retry and max_tries (both optional; when
// present they must have the schema's types: boolean, integer).
func decodeRunContext(startup map[string]any) (runContext, error) {
	var rc runContext
	tiContext, ok := asMap(startup["ti_context"])
	if !ok {
		return rc, fmt.Errorf("StartupDetails.ti_context is %T, not a map", startup["ti_context"])
	}
	if v := tiContext["should_retry"]; v != nil {
		if rc.shouldRetry, ok = v.(bool); !ok {
			return rc, fmt.Errorf("ti_context.should_retry is %T, not a boolean", v)
		}
	}
	if v := tiContext["max_tries"]; v != nil {
		if rc.maxTries, ok = asInt(v); !ok {
			return rc, fmt.Errorf("ti_context.max_tries is %T, not an integer", v)
		}
	}
	return rc, nil
}

// execute maps one StartupDetails body to the terminal body, and says whether
// it reports a failure (TaskState(failed) or RetryTask).
func execute(startup map[string]any, preFix bool, now func() time.Time) (body any, failure bool, err error) {
	ti, ok := asMap(startup["ti"])
	if !ok || ti == nil {
		return nil, false, fmt.Errorf("StartupDetails.ti is %T, not a map", startup["ti"])
	}
	var rc runContext
	if !preFix { // the seed's bug: the run context is never read
		if rc, err = decodeRunContext(startup); err != nil {
			return nil, false, err
		}
	}
	taskID, _ := ti["task_id"].(string)
	tiID, _ := ti["id"].(string)
	if taskID == badTIID {
		tiID = "not-a-uuid:" + tiID
	}
	if !isUUID(tiID) {
		return taskState("failed", now()), true, nil
	}
	t, registered := tasks[taskID]
	if !registered {
		return taskState("removed", now()), false, nil
	}
	if runTask(t) == nil {
		return succeedTask(now()), false, nil
	}
	if !preFix && rc.shouldRetry {
		return retryTask(now()), true, nil
	}
	return taskState("failed", now()), true, nil
}

// runTask runs t, turning a panic into an error: a panic is a failure of the task.
func runTask(t task) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("task panicked: %v", r)
		}
	}()
	return t()
}

// isUUID accepts the canonical 8-4-4-4-12 hex form, the form Airflow sends.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
