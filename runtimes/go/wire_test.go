package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"
)

// when is 2026-05-17T12:34:56.789012Z; the nanoseconds below it are dropped on the wire.
var when = time.Date(2026, 5, 17, 12, 34, 56, 789012345, time.UTC)

// The expected bytes are what impl/codec.encode_request(RequestFrame(1,
// terminal_body(FRAME, STATE, when))) writes, which equals Airflow's own
// _RequestFrame(id=1, body=...).as_bytes() and validates against schema.json.
var golden = []struct {
	name string
	body any
	hex  string
}{
	{"TaskState(failed)", taskState("failed", endDate(when, false)),
		"00000033930183a57374617465a66661696c6564a8656e645f64617465d7ffbc1d78806a09b5f0a474797065a95461736b5374617465c0"},
	{"TaskState(removed)", taskState("removed", endDate(when, false)),
		"00000034930183a57374617465a772656d6f766564a8656e645f64617465d7ffbc1d78806a09b5f0a474797065a95461736b5374617465c0"},
	{"SucceedTask", succeedTask(endDate(when, false)),
		"00000053930185a57374617465a773756363657373a8656e645f64617465d7ffbc1d78806a09b5f0ac7461736b5f6f75746c65747390ad6f75746c65745f6576656e747390a474797065ab537563636565645461736bc0"},
	{"RetryTask", retryTask(endDate(when, false), ""),
		"00000039930183a57374617465ac75705f666f725f7265747279a8656e645f64617465d7ffbc1d78806a09b5f0a474797065a952657472795461736bc0"},
}

func TestTerminalFramesAreByteCompatible(t *testing.T) {
	for _, g := range golden {
		var buf bytes.Buffer
		if err := writeRequest(&buf, 1, g.body); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(buf.Bytes()); got != g.hex {
			t.Errorf("%s:\n got %s\nwant %s", g.name, got, g.hex)
		}
	}
}

func TestReadFrame(t *testing.T) {
	// Airflow's _ResponseFrame(id=1, error=None): [1, nil, nil].
	f, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 4, 0x93, 0x01, 0xc0, 0xc0}))
	if err != nil || f.id != 1 || f.body != nil || f.third != nil {
		t.Fatalf("ack: %+v %v", f, err)
	}
	bad := map[string][]byte{
		"truncated":    {0, 0, 0, 4, 0x93, 0x01},
		"stray bytes":  {0, 0, 0, 5, 0x93, 0x01, 0xc0, 0xc0, 0xc0},
		"one field":    {0, 0, 0, 2, 0x91, 0x01},
		"string id":    {0, 0, 0, 5, 0x93, 0xa1, 'x', 0xc0, 0xc0},
		"untyped body": {0, 0, 0, 4, 0x93, 0x01, 0x80, 0xc0},
		"oversized":    {0x7f, 0, 0, 0},
	}
	for name, b := range bad {
		if _, err := readFrame(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// inline runs a task as the runtime would, with a context nothing cancels.
func inline(escapes bool) func(task) error {
	return func(t task) error { return runTask(context.Background(), t, escapes) }
}

func TestExecute(t *testing.T) {
	now := func() time.Time { return when }
	at := endDate(when, false)
	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	with := func(change func(*options)) options {
		o := defaults()
		change(&o)
		return o
	}
	none := func(*options) {}
	cases := []struct {
		taskID      string
		shouldRetry bool
		opts        options
		want        any
		failure     bool
	}{
		{"success", true, with(none), succeedTask(at), false},
		{"error", true, with(none), retryTask(at, ""), true},
		{"panic", true, with(none), retryTask(at, ""), true},
		{"error", false, with(none), taskState("failed", at), true},
		{"panic", true, with(func(o *options) { o.noRetry = true }), taskState("failed", at), true},
		{"other", true, with(none), taskState("removed", at), false},
		{"bad_ti_id", true, with(none), taskState("failed", at), true},
		{"bad_ti_id", true, with(func(o *options) { o.lookupFirst = true }), taskState("removed", at), false},
		{"error", true, with(func(o *options) { o.retryReason = true }), retryTask(at, "the task returned an error"), true},
		{"success", true, with(func(o *options) { o.rfc3339 = true }), succeedTask("2026-05-17T12:34:56Z"), false},
		{"error", true, with(func(o *options) { o.panicEscapes = true }), retryTask(at, ""), true},
	}
	for _, c := range cases {
		startup := map[string]any{
			"type":       "StartupDetails",
			"ti":         map[string]any{"id": id, "task_id": c.taskID, "try_number": int64(1)},
			"ti_context": map[string]any{"should_retry": c.shouldRetry, "max_tries": int64(1)},
		}
		got, failure, err := execute(startup, c.opts, now, inline(c.opts.panicEscapes))
		if err != nil || !reflect.DeepEqual(got, c.want) || failure != c.failure {
			t.Errorf("%s should_retry=%v %+v: got %+v %v %v", c.taskID, c.shouldRetry, c.opts, got, failure, err)
		}
	}
	// A panic that escapes the handler leaves no body: the runtime exits without a frame.
	startup := map[string]any{"type": "StartupDetails", "ti": map[string]any{"id": id, "task_id": "panic"},
		"ti_context": map[string]any{"should_retry": true}}
	o := with(func(o *options) { o.panicEscapes = true })
	if body, _, err := execute(startup, o, now, inline(true)); body != nil || !errors.Is(err, errEscaped) {
		t.Errorf("an escaping panic: got %+v %v", body, err)
	}
}

func TestFlags(t *testing.T) {
	addr := []string{"--comm=127.0.0.1:1", "--logs=127.0.0.1:2"}
	opts, _, err := parseArgs(append([]string{"--frame-id=reuse", "--end-date=rfc3339", "--log-lines", "--lookup-first",
		"--fail-closed=after-any-frame", "--retry-reason", "--no-retry", "--sigterm-waiting=traps",
		"--sigterm-running=grace-then-exit-1", "--grace=250ms", "--panic-escapes"}, addr...))
	want := options{comm: "127.0.0.1:1", logs: "127.0.0.1:2", reuseID: true, rfc3339: true, logLines: true,
		lookupFirst: true, failClosed: failsAfterAnyFrame, retryReason: true, noRetry: true, sigtermWaiting: sigtermTraps,
		sigtermRunning: sigtermGraceThenExit1, grace: 250 * time.Millisecond, panicEscapes: true}
	if err != nil || opts != want || !opts.failsClosedOn(false) || !opts.waitsForAnswer() {
		t.Errorf("got %+v %v", opts, err)
	}
	contract, _, _ := parseArgs(addr)
	if !contract.failsClosedOn(true) || contract.failsClosedOn(false) || contract.noRetry ||
		contract.sigtermWaiting != sigtermDies || contract.sigtermRunning != sigtermDies || contract.grace != 30*time.Second {
		t.Errorf("the contract by default: got %+v", contract)
	}
	// The aliases: --no-fail-closed is --fail-closed=never; --pre-fix is that and --no-retry.
	for alias, noRetry := range map[string]bool{"--no-fail-closed": false, "--pre-fix": true} {
		opts, _, err := parseArgs(append([]string{alias}, addr...))
		if err != nil || opts.waitsForAnswer() || opts.failsClosedOn(true) || opts.noRetry != noRetry {
			t.Errorf("%s: got %+v %v", alias, opts, err)
		}
		if _, _, err := parseArgs(append([]string{alias, "--fail-closed=never"}, addr...)); err != nil {
			t.Errorf("%s --fail-closed=never: %v", alias, err)
		}
	}
	for _, bad := range [][]string{{"--frame-id=other"}, {"--end-date"}, {"--log-lines", "--log-lines"}, {"--nope"},
		{"--fail-closed=sometimes"}, {"--sigterm-running=explodes"}, {"--sigterm-waiting"}, {"--grace=soon"},
		{"--grace=-1s"}, {"--no-fail-closed", "--fail-closed=after-any-frame"}, {"--pre-fix", "--fail-closed=after-a-failure"}} {
		if _, _, err := parseArgs(append(bad, addr...)); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

// testdata/startup-details.frame is the first frame Airflow's real supervisor
// (apache-airflow-task-sdk 1.3.2, _PopenActivitySubprocess) sent to a runtime:
// [0, StartupDetails, nil], task_id "success", try 1 of max_tries 1.
func TestDecodeRealStartupDetails(t *testing.T) {
	raw, err := os.ReadFile("testdata/startup-details.frame")
	if err != nil {
		t.Fatal(err)
	}
	f, err := readFrame(bytes.NewReader(raw))
	if err != nil || f.id != 0 || f.third != nil || f.body["type"] != "StartupDetails" {
		t.Fatalf("%+v %v", f, err)
	}
	if _, ok := f.body["start_date"].(time.Time); !ok {
		t.Errorf("start_date is %T, not a msgpack timestamp", f.body["start_date"])
	}
	rc, err := decodeRunContext(f.body)
	if err != nil || rc != (runContext{shouldRetry: true, maxTries: 1}) {
		t.Errorf("run context %+v %v", rc, err)
	}
	body, failure, err := execute(f.body, defaults(), func() time.Time { return when }, inline(false))
	if err != nil || failure || !reflect.DeepEqual(body, succeedTask(endDate(when, false))) {
		t.Errorf("execute: %+v %v %v", body, failure, err)
	}
}
