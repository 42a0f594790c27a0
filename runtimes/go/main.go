// Command go-runtime is a coordinator-mode task runtime for Apache Airflow,
// written by the finalstate project to run its checker against a runtime that
// is not Python. It is not Airflow's Go SDK; it implements the contract in
// runtimes/README.md, the same one impl/coordinator/reference_runtime.py
// implements in Python.
//
//	go-runtime [FLAGS] --comm=HOST:PORT --logs=HOST:PORT
//
// One try: connect to --comm, then --logs; read StartupDetails; run the task
// registered under the TI's task_id; send one terminal frame; wait for the
// supervisor's answer; exit (1 when a failure's frame was not taken: fail
// closed). The flags reproduce what runtimes do differently, one trait each,
// as the SDKs do it (model.sdks; runtimes/README.md):
//
//	--no-retry            no retry branch: every failure is TaskState(failed) (apache/airflow#67797, #67798)
//	--fail-closed=WHEN    never (exit 0 once the frame is written, never reading the answer: the Go and
//	                      TypeScript SDKs), after-a-failure (the contract, the default), or after-any-frame
//	                      (read one answer to every frame, exit 1 when any frame was not taken: the Java SDK)
//	--sigterm-waiting=B   what SIGTERM does while the runtime waits on the supervisor (for StartupDetails,
//	--sigterm-running=B   or for the answer to its frame), and while its task runs; B is one of:
//	                      dies (the default disposition), exits-143 (a shutdown path, then exit 128+15, sending
//	                      nothing more: the JVM), traps (nothing happens: only SIGKILL ends it), cancels (the
//	                      task's context is cancelled: the Go SDK's signal.NotifyContext), grace-then-exit-1
//	                      (the task's context is cancelled, and the process exits 1 after --grace: the
//	                      TypeScript SDK's createRuntimeAbort)
//	--grace=DURATION      the grace of grace-then-exit-1 (a Go duration; default 30s, the TypeScript SDK's)
//	--panic-escapes       a panicking task escapes the runtime's handler: no frame, exit 1 (a Java Error before
//	                      apache/airflow#68555)
//	--frame-id=reuse      send the terminal frame with StartupDetails' id (0), not id+1
//	--retry-reason        add retry_reason (the error's text) to RetryTask
//	--lookup-first        look the task up before validating the TI id
//	--end-date=rfc3339    write end_date as an RFC 3339 string in whole seconds, not a msgpack timestamp
//	--log-lines           write JSON log lines on --logs
//	--no-fail-closed      the same as --fail-closed=never
//	--pre-fix             the Go SDK before apache/airflow#68554: --no-retry --fail-closed=never
//
// The tasks, by task id: success, error, panic, and cancellable (runs until its
// context is cancelled, then returns the cancellation as its error).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

const (
	exitOK         = 0
	exitFailClosed = 1  // a frame it fails closed on was not acknowledged (also: cannot reach the supervisor)
	exitEscaped    = 1  // a panic escaped the runtime's handler, as an uncaught Java Error ends the JVM
	exitUsage      = 2  // bad command line
	exitProtocol   = 70 // the first frame is not a usable StartupDetails (EX_SOFTWARE)
	dialTimeout    = 10 * time.Second
	defaultGrace   = 30 * time.Second // the TypeScript SDK's ABORT_GRACE_PERIOD_MS
	usage          = "usage: go-runtime [--no-retry] [--fail-closed=never|after-a-failure|after-any-frame] " +
		"[--sigterm-waiting=B] [--sigterm-running=B] [--grace=DURATION] [--panic-escapes] [--frame-id=next|reuse] " +
		"[--end-date=timestamp|rfc3339] [--retry-reason] [--log-lines] [--lookup-first] [--no-fail-closed] [--pre-fix] " +
		"--comm=HOST:PORT --logs=HOST:PORT\n  B: dies|exits-143|traps|cancels|grace-then-exit-1"
)

// How far the runtime fails closed (--fail-closed).
const (
	failsNever         = "never"
	failsAfterAFailure = "after-a-failure"
	failsAfterAnyFrame = "after-any-frame"
)

// What SIGTERM does (--sigterm-waiting, --sigterm-running).
const (
	sigtermDies           = "dies"
	sigtermExits143       = "exits-143"
	sigtermTraps          = "traps"
	sigtermCancels        = "cancels"
	sigtermGraceThenExit1 = "grace-then-exit-1"
)

var sigtermBehaviours = []string{sigtermDies, sigtermExits143, sigtermTraps, sigtermCancels, sigtermGraceThenExit1}

type options struct {
	comm, logs     string
	noRetry        bool
	failClosed     string
	sigtermWaiting string
	sigtermRunning string
	grace          time.Duration
	panicEscapes   bool
	reuseID        bool // --frame-id=reuse
	rfc3339        bool // --end-date=rfc3339
	retryReason    bool
	logLines       bool
	lookupFirst    bool
}

// defaults is the contract: retry branch, fail closed after a failure, SIGTERM's default disposition.
func defaults() options {
	return options{failClosed: failsAfterAFailure, sigtermWaiting: sigtermDies, sigtermRunning: sigtermDies,
		grace: defaultGrace}
}

// waitsForAnswer says whether the runtime reads the supervisor's answer to its terminal frame.
func (o options) waitsForAnswer() bool { return o.failClosed != failsNever }

// failsClosedOn says whether a frame the supervisor did not take makes the runtime exit 1.
func (o options) failsClosedOn(failure bool) bool {
	return o.failClosed == failsAfterAnyFrame || o.failClosed == failsAfterAFailure && failure
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
// in any order) and the flags above, each at most once; anything else is a
// usage error, and so is an alias that contradicts the flag it stands for.
func parseArgs(args []string) (opts options, help bool, err error) {
	opts = defaults()
	seen := map[string]bool{}
	switches := map[string]*bool{"--no-retry": &opts.noRetry, "--panic-escapes": &opts.panicEscapes,
		"--retry-reason": &opts.retryReason, "--log-lines": &opts.logLines, "--lookup-first": &opts.lookupFirst}
	twoWay := map[string]struct {
		set     *bool
		off, on string
	}{"--frame-id": {&opts.reuseID, "next", "reuse"}, "--end-date": {&opts.rfc3339, "timestamp", "rfc3339"}}
	oneOf := map[string]struct {
		set     *string
		choices []string
	}{"--fail-closed": {&opts.failClosed, []string{failsNever, failsAfterAFailure, failsAfterAnyFrame}},
		"--sigterm-waiting": {&opts.sigtermWaiting, sigtermBehaviours},
		"--sigterm-running": {&opts.sigtermRunning, sigtermBehaviours}}
	var aliases []string
	for _, arg := range args {
		name, value, hasValue := strings.Cut(arg, "=")
		if seen[name] {
			return opts, false, fmt.Errorf("%s given twice", name)
		}
		seen[name] = true
		if flag, ok := switches[arg]; ok {
			*flag = true
			continue
		}
		if choice, ok := twoWay[name]; ok && hasValue {
			if value != choice.off && value != choice.on {
				return opts, false, fmt.Errorf("%s is %s or %s, not %q", name, choice.off, choice.on, value)
			}
			*choice.set = value == choice.on
			continue
		}
		if choice, ok := oneOf[name]; ok && hasValue {
			if !contains(choice.choices, value) {
				return opts, false, fmt.Errorf("%s is one of %s, not %q", name, strings.Join(choice.choices, ", "), value)
			}
			*choice.set = value
			continue
		}
		switch {
		case arg == "-h" || arg == "--help":
			return opts, true, nil
		case arg == "--no-fail-closed" || arg == "--pre-fix":
			aliases = append(aliases, arg)
		case name == "--grace" && hasValue:
			if opts.grace, err = time.ParseDuration(value); err != nil || opts.grace < 0 {
				return opts, false, fmt.Errorf("--grace wants a duration such as 30s or 500ms, got %q", value)
			}
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
	for _, alias := range aliases { // --no-fail-closed: --fail-closed=never; --pre-fix: and --no-retry too
		if seen["--fail-closed"] && opts.failClosed != failsNever {
			return opts, false, fmt.Errorf("%s means --fail-closed=never, not --fail-closed=%s", alias, opts.failClosed)
		}
		opts.failClosed = failsNever
		opts.noRetry = opts.noRetry || alias == "--pre-fix"
	}
	if opts.comm == "" || opts.logs == "" {
		return opts, false, errors.New("--comm and --logs are both required")
	}
	return opts, false, nil
}

func contains(choices []string, value string) bool {
	for _, c := range choices {
		if c == value {
			return true
		}
	}
	return false
}

// logger writes JSON log lines on --logs with --log-lines, as the supervisor
// reads them (timestamp, level, event); nothing otherwise.
type logger struct{ out io.Writer }

func (l logger) log(level, event string) {
	if l.out == nil {
		return
	}
	line, _ := json.Marshal(map[string]string{"timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"level": level, "event": event, "logger": "go-runtime"})
	l.out.Write(append(line, '\n'))
}

// try runs one try against the supervisor and returns the exit status.
func try(opts options) int {
	term := watchSigterm(opts)
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
	defer logs.Close()
	log := logger{}
	if opts.logLines {
		log.out = logs
	}
	term.onShutdown(func() { log.log("info", "SIGTERM: shutting down") })
	log.log("debug", "connected")

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
		runner := func(t task) error { return term.running(t, func() { log.log("debug", "task started") }) }
		body, failure, err = execute(startup.body, opts, time.Now, runner)
	}
	if errors.Is(err, errEscaped) {
		fmt.Fprintf(os.Stderr, "go-runtime: %v\n", err)
		return exitEscaped
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-runtime: %v\n", err)
		return exitProtocol
	}
	if failure {
		log.log("error", "task failed")
	}
	id := startup.id + 1
	if opts.reuseID {
		id = startup.id
	}
	if !opts.waitsForAnswer() { // as the Go SDK's Serve: write the result, read nothing back
		if err := writeRequest(comm, id, body); err != nil {
			fmt.Fprintf(os.Stderr, "go-runtime: sending the task's result: %v\n", err)
			return exitFailClosed
		}
		log.log("debug", "task execution complete")
		return exitOK
	}
	if deliver(comm, id, body) || !opts.failsClosedOn(failure) {
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

// A task returns nil on success, or an error; it may also panic. Its context is
// cancelled where the runtime cancels its task on SIGTERM (--sigterm-running).
type task func(ctx context.Context) error

// tasks is the registry, by task id, as an SDK dispatches a TI to its task.
var tasks = map[string]task{
	"success": func(context.Context) error { return nil },
	"error":   func(context.Context) error { return errors.New("the task returned an error") },
	"panic":   func(context.Context) error { panic("the task panicked") },
	// cancellable runs until it is cancelled and honours the cancellation: its
	// error is the cancellation's. Nothing else ends it.
	"cancellable": func(ctx context.Context) error {
		<-ctx.Done()
		return fmt.Errorf("the task was cancelled: %w", ctx.Err())
	},
}

// errEscaped marks a task's panic that escaped the runtime's handler (--panic-escapes).
var errEscaped = errors.New("the task's panic escaped the runtime")

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
// it reports a failure (TaskState(failed) or RetryTask); runner runs the task
// (the sigterm watcher's running, which gives it its context). A panic that
// escapes (--panic-escapes) is an error wrapping errEscaped: no body.
func execute(startup map[string]any, opts options, now func() time.Time, runner func(task) error) (body any, failure bool, err error) {
	ti, ok := asMap(startup["ti"])
	if !ok || ti == nil {
		return nil, false, fmt.Errorf("StartupDetails.ti is %T, not a map", startup["ti"])
	}
	var rc runContext
	if !opts.noRetry { // the seed's bug: the run context is never read
		if rc, err = decodeRunContext(startup); err != nil {
			return nil, false, err
		}
	}
	end := func() any { return endDate(now(), opts.rfc3339) }
	taskID, _ := ti["task_id"].(string)
	tiID, _ := ti["id"].(string)
	if taskID == badTIID {
		tiID = "not-a-uuid:" + tiID
	}
	t, registered := tasks[taskID]
	if opts.lookupFirst && !registered { // as the Go SDK's RunTask: the lookup comes first
		return taskState("removed", end()), false, nil
	}
	if !isUUID(tiID) {
		return taskState("failed", end()), true, nil
	}
	if !registered {
		return taskState("removed", end()), false, nil
	}
	taskErr := runner(func(ctx context.Context) error { return runTask(ctx, t, opts.panicEscapes) })
	if errors.Is(taskErr, errEscaped) {
		return nil, true, taskErr
	}
	if taskErr == nil {
		return succeedTask(end()), false, nil
	}
	if !opts.noRetry && rc.shouldRetry {
		reason := ""
		if opts.retryReason {
			reason = taskErr.Error()
		}
		return retryTask(end(), reason), true, nil
	}
	return taskState("failed", end()), true, nil
}

// runTask runs t, turning a panic into an error: a panic is a failure of the
// task, unless it escapes the handler (escapes: an error wrapping errEscaped).
func runTask(ctx context.Context, t task, escapes bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("task panicked: %v", r)
			if escapes {
				err = fmt.Errorf("%w: %v", errEscaped, r)
			}
		}
	}()
	return t(ctx)
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
