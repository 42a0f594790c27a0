package main

import (
	"bytes"
	"encoding/hex"
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
	{"TaskState(failed)", taskState("failed", when),
		"00000033930183a57374617465a66661696c6564a8656e645f64617465d7ffbc1d78806a09b5f0a474797065a95461736b5374617465c0"},
	{"TaskState(removed)", taskState("removed", when),
		"00000034930183a57374617465a772656d6f766564a8656e645f64617465d7ffbc1d78806a09b5f0a474797065a95461736b5374617465c0"},
	{"SucceedTask", succeedTask(when),
		"00000053930185a57374617465a773756363657373a8656e645f64617465d7ffbc1d78806a09b5f0ac7461736b5f6f75746c65747390ad6f75746c65745f6576656e747390a474797065ab537563636565645461736bc0"},
	{"RetryTask", retryTask(when),
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

func TestExecute(t *testing.T) {
	now := func() time.Time { return when }
	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	cases := []struct {
		taskID      string
		shouldRetry bool
		preFix      bool
		want        any
		failure     bool
	}{
		{"success", true, false, succeedTask(when), false},
		{"error", true, false, retryTask(when), true},
		{"panic", true, false, retryTask(when), true},
		{"error", false, false, taskState("failed", when), true},
		{"panic", true, true, taskState("failed", when), true},
		{"other", true, false, taskState("removed", when), false},
		{"bad_ti_id", true, false, taskState("failed", when), true},
	}
	for _, c := range cases {
		startup := map[string]any{
			"type":       "StartupDetails",
			"ti":         map[string]any{"id": id, "task_id": c.taskID, "try_number": int64(1)},
			"ti_context": map[string]any{"should_retry": c.shouldRetry, "max_tries": int64(1)},
		}
		got, failure, err := execute(startup, c.preFix, now)
		if err != nil || !reflect.DeepEqual(got, c.want) || failure != c.failure {
			t.Errorf("%s should_retry=%v pre-fix=%v: got %+v %v %v", c.taskID, c.shouldRetry, c.preFix, got, failure, err)
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
	body, failure, err := execute(f.body, false, func() time.Time { return when })
	if err != nil || failure || !reflect.DeepEqual(body, succeedTask(when)) {
		t.Errorf("execute: %+v %v %v", body, failure, err)
	}
}
