package main

// The supervisor <-> runtime wire, written from the contract (runtimes/README.md):
// a frame is a 4-byte big-endian payload length, then a msgpack array,
// [id, body, context_carrier] from the runtime and [id, body, error] from the
// supervisor. A body is a map with a "type" discriminator. Timestamps travel
// as the msgpack timestamp extension (type -1), as Airflow encodes a
// timezone-aware datetime.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

const (
	headerSize = 4
	// maxFrame refuses an announced length before reading its payload.
	maxFrame = 16 << 20
)

// frame is a decoded frame: id, body, and the third field (the supervisor's
// error, or a runtime's context carrier). A nil map is msgpack nil.
type frame struct {
	id    int64
	body  map[string]any
	third map[string]any
}

// errBroken marks a comm channel that failed as a channel: EOF, reset, short read.
var errBroken = errors.New("comm channel broken")

// readFrame reads one whole frame. I/O failures wrap errBroken; a frame that
// arrived whole but is not a valid frame is returned as a plain error.
func readFrame(r io.Reader) (frame, error) {
	var header [headerSize]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return frame{}, fmt.Errorf("%w: reading the length prefix: %v", errBroken, err)
	}
	n := binary.BigEndian.Uint32(header[:])
	if n > maxFrame {
		return frame{}, fmt.Errorf("oversized frame: length prefix says %d bytes, limit is %d", n, maxFrame)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return frame{}, fmt.Errorf("%w: reading a %d-byte payload: %v", errBroken, n, err)
	}
	return decodeFrame(payload)
}

func decodeFrame(payload []byte) (frame, error) {
	rd := bytes.NewReader(payload)
	dec := msgpack.NewDecoder(rd)
	dec.UseLooseInterfaceDecoding(true) // integers of any width come back as int64/uint64
	v, err := dec.DecodeInterfaceLoose()
	if err != nil {
		return frame{}, fmt.Errorf("frame payload is not msgpack: %v", err)
	}
	if rd.Len() != 0 {
		return frame{}, fmt.Errorf("%d stray bytes after the frame's array", rd.Len())
	}
	fields, ok := v.([]any)
	if !ok || len(fields) < 2 || len(fields) > 3 {
		return frame{}, fmt.Errorf("a frame is a msgpack array of 2 or 3 fields, got %T %s", v, clip(v, 60))
	}
	var f frame
	if f.id, ok = asInt(fields[0]); !ok {
		return frame{}, fmt.Errorf("frame id must be an integer, got %T", fields[0])
	}
	if f.body, ok = asMap(fields[1]); !ok {
		return frame{}, fmt.Errorf("frame body must be a map or nil, got %T", fields[1])
	}
	if len(fields) == 3 {
		if f.third, ok = asMap(fields[2]); !ok {
			return frame{}, fmt.Errorf("frame field 3 must be a map or nil, got %T", fields[2])
		}
	}
	if f.body != nil {
		if _, ok := f.body["type"].(string); !ok {
			return frame{}, errors.New("frame body has no string 'type' discriminator")
		}
	}
	return f, nil
}

// writeRequest sends [id, body, nil] as one write: Airflow's own encoder
// always writes the third field, nil when there is no context carrier.
func writeRequest(w io.Writer, id int64, body any) error {
	var buf bytes.Buffer
	buf.Write(make([]byte, headerSize))
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	err := errors.Join(enc.EncodeArrayLen(3), enc.EncodeInt(id), enc.Encode(body), enc.EncodeNil())
	if err != nil {
		return fmt.Errorf("encoding the frame: %v", err)
	}
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b, uint32(len(b)-headerSize))
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("%w: writing the frame: %v", errBroken, err)
	}
	return nil
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		return int64(n), n <= 1<<63-1
	}
	return 0, false
}

func asMap(v any) (map[string]any, bool) {
	if v == nil {
		return nil, true
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// -- the terminal bodies ------------------------------------------------------
//
// Exactly the fields impl/codec.terminal_body puts in each body, in its key
// order, so the bytes equal what Airflow's encoder and ours write for the same
// values. Struct fields encode as a msgpack map in declaration order.

type taskStateBody struct {
	State   string `msgpack:"state"`
	EndDate any    `msgpack:"end_date"`
	Type    string `msgpack:"type"`
}

type succeedTaskBody struct {
	State        string `msgpack:"state"`
	EndDate      any    `msgpack:"end_date"`
	TaskOutlets  []any  `msgpack:"task_outlets"`
	OutletEvents []any  `msgpack:"outlet_events"`
	Type         string `msgpack:"type"`
}

type retryTaskBody struct {
	State       string `msgpack:"state"`
	EndDate     any    `msgpack:"end_date"`
	RetryReason string `msgpack:"retry_reason,omitempty"`
	Type        string `msgpack:"type"`
}

// endDate is what end_date carries: a timestamp Airflow's datetime can hold
// (UTC, whole microseconds; the msgpack timestamp extension on the wire), or
// with rfc3339 the string a pre-#68554 Go SDK wrote (whole seconds, "Z").
func endDate(t time.Time, rfc3339 bool) any {
	if rfc3339 {
		return t.UTC().Format(time.RFC3339)
	}
	return t.UTC().Truncate(time.Microsecond)
}

func taskState(state string, end any) taskStateBody {
	return taskStateBody{State: state, EndDate: end, Type: "TaskState"}
}

func succeedTask(end any) succeedTaskBody {
	return succeedTaskBody{State: "success", EndDate: end, TaskOutlets: []any{}, OutletEvents: []any{}, Type: "SucceedTask"}
}

// retryTask is the RetryTask body; a non-empty reason is sent as retry_reason.
func retryTask(end any, reason string) retryTaskBody {
	return retryTaskBody{State: "up_for_retry", EndDate: end, RetryReason: reason, Type: "RetryTask"}
}
