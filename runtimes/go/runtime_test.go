package main

// The runtime as a process: the test binary re-runs itself as go-runtime
// (TestMain) under a fake supervisor that speaks the frames, and each trait's
// flag is checked by what the supervisor would see: the frame, the exit, the
// signal it died of. Real signals, real sockets.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

const asMain = "GO_RUNTIME_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// supervisor is the fake supervisor's end of one try of the runtime.
type supervisor struct {
	t          *testing.T
	cmd        *exec.Cmd
	comm, logs net.Conn
	lines      *bufio.Scanner
	exited     chan struct{}
	state      *os.ProcessState
	stderr     strings.Builder
}

const patience = 10 * time.Second

// launch starts the runtime with flags (and --log-lines) and accepts its two connections.
func launch(t *testing.T, flags ...string) *supervisor {
	t.Helper()
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	commL, logsL := listen(), listen()
	args := append(flags, "--log-lines", "--comm="+commL.Addr().String(), "--logs="+logsL.Addr().String())
	s := &supervisor{t: t, cmd: exec.Command(os.Args[0], args...), exited: make(chan struct{})}
	s.cmd.Env = append(os.Environ(), asMain+"=1")
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		s.state = s.cmd.ProcessState
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
	})
	accept := func(l net.Listener) net.Conn {
		l.(*net.TCPListener).SetDeadline(time.Now().Add(patience))
		c, err := l.Accept()
		if err != nil {
			t.Fatalf("the runtime did not connect: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(patience))
		return c
	}
	s.comm, s.logs = accept(commL), accept(logsL)
	s.lines = bufio.NewScanner(s.logs)
	s.awaitLog("connected")
	return s
}

// awaitLog reads the runtime's log lines up to one whose event is event.
func (s *supervisor) awaitLog(event string) {
	s.t.Helper()
	for s.lines.Scan() {
		if strings.Contains(s.lines.Text(), `"event":"`+event+`"`) {
			return
		}
	}
	s.t.Fatalf("no log line %q: %v; stderr: %s", event, s.lines.Err(), s.stderr.String())
}

// startup sends StartupDetails for task taskID, should_retry true, on request id 0.
func (s *supervisor) startup(taskID string) {
	s.t.Helper()
	body := map[string]any{"type": "StartupDetails",
		"ti":         map[string]any{"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "task_id": taskID, "try_number": 1},
		"ti_context": map[string]any{"should_retry": true, "max_tries": 1}}
	if err := writeRequest(s.comm, 0, body); err != nil {
		s.t.Fatal(err)
	}
	if taskID == "cancellable" {
		s.awaitLog("task started")
	}
}

func (s *supervisor) sigterm() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
}

// frame reads the runtime's terminal frame; its type, or "" when the runtime sent none (EOF).
func (s *supervisor) frame() (int64, string) {
	s.t.Helper()
	f, err := readFrame(s.comm)
	if errors.Is(err, errBroken) {
		return 0, ""
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return f.id, f.body["type"].(string)
}

// answer answers request id: taken, or refused with an error as the supervisor does when its API call failed.
func (s *supervisor) answer(id int64, taken bool) {
	s.t.Helper()
	var refusal any
	if !taken {
		refusal = map[string]any{"error": "API_SERVER_ERROR", "detail": map[string]any{"status_code": 500}}
	}
	payload, _ := msgpack.Marshal([]any{id, nil, refusal})
	data := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	if _, err := s.comm.Write(append(data, payload...)); err != nil {
		s.t.Fatal(err)
	}
}

// exit waits for the runtime to end: its exit code, or -N when it died of signal N; within limit.
func (s *supervisor) exit(limit time.Duration) int {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(limit):
		s.t.Fatalf("the runtime was still running after %v; stderr: %s", limit, s.stderr.String())
	}
	if ws := s.state.Sys().(syscall.WaitStatus); ws.Signaled() {
		return -int(ws.Signal())
	}
	return s.state.ExitCode()
}

// alive says whether the runtime is still running after d.
func (s *supervisor) alive(d time.Duration) bool {
	select {
	case <-s.exited:
		return false
	case <-time.After(d):
		return true
	}
}

func TestSigtermWhileWaiting(t *testing.T) {
	for _, c := range []struct {
		flags []string
		exit  int
	}{
		{nil, -15}, // the default disposition
		{[]string{"--sigterm-waiting=exits-143"}, 143},
		{[]string{"--sigterm-waiting=grace-then-exit-1", "--grace=200ms"}, 1},
		{[]string{"--sigterm-running=cancels"}, -15}, // the running phase's handling is not the waiting phase's
	} {
		s := launch(t, c.flags...)
		s.sigterm()
		if got := s.exit(patience); got != c.exit {
			t.Errorf("%v: SIGTERM while waiting for StartupDetails: exit %d, want %d", c.flags, got, c.exit)
		}
	}
}

func TestATrappedSigtermLeavesOnlySigkill(t *testing.T) {
	for _, flag := range []string{"--sigterm-waiting=traps", "--sigterm-waiting=cancels"} {
		s := launch(t, flag)
		s.sigterm()
		if !s.alive(300 * time.Millisecond) {
			t.Fatalf("%s: SIGTERM ended it (exit %d)", flag, s.exit(0))
		}
		s.cmd.Process.Signal(syscall.SIGKILL)
		if got := s.exit(patience); got != -9 {
			t.Errorf("%s: exit %d, want SIGKILL's", flag, got)
		}
	}
}

func TestSigtermWhileTheTaskRuns(t *testing.T) {
	for _, c := range []struct {
		flags []string
		frame string // the frame reported, "" for none
		exit  int
	}{
		{nil, "", -15},
		{[]string{"--sigterm-running=exits-143"}, "", 143},
		{[]string{"--sigterm-running=cancels"}, "RetryTask", 0},
		{[]string{"--sigterm-running=cancels", "--fail-closed=never"}, "RetryTask", 0},
		{[]string{"--sigterm-running=grace-then-exit-1"}, "RetryTask", 0}, // the task honoured the abort: reported first
		{[]string{"--sigterm-running=cancels", "--no-retry"}, "TaskState", 0},
	} {
		s := launch(t, c.flags...)
		s.startup("cancellable")
		if !s.alive(100 * time.Millisecond) {
			t.Fatalf("%v: the cancellable task ended by itself", c.flags)
		}
		s.sigterm()
		id, frame := s.frame()
		if frame != c.frame {
			t.Errorf("%v: frame %q, want %q", c.flags, frame, c.frame)
		}
		if frame != "" {
			s.answer(id, true)
		}
		if got := s.exit(patience); got != c.exit {
			t.Errorf("%v: exit %d, want %d; stderr: %s", c.flags, got, c.exit, s.stderr.String())
		}
	}
}

func TestATrappedSigtermLeavesTheCancellableTaskRunning(t *testing.T) {
	s := launch(t, "--sigterm-running=traps")
	s.startup("cancellable")
	s.sigterm()
	if !s.alive(300 * time.Millisecond) {
		t.Fatalf("SIGTERM ended it (exit %d)", s.exit(0))
	}
}

func TestFailClosedScope(t *testing.T) {
	for _, c := range []struct {
		flags  []string
		task   string
		taken  bool
		exit   int
		answer bool // whether the runtime waits for the answer
	}{
		{nil, "success", false, 0, true},
		{nil, "error", false, 1, true},
		{nil, "error", true, 0, true},
		{[]string{"--fail-closed=after-any-frame"}, "success", false, 1, true},
		{[]string{"--fail-closed=after-any-frame"}, "success", true, 0, true},
		{[]string{"--fail-closed=after-any-frame"}, "unknown_task", false, 1, true},
		{[]string{"--fail-closed=never"}, "error", false, 0, false},
	} {
		s := launch(t, c.flags...)
		s.startup(c.task)
		id, frame := s.frame()
		if frame == "" {
			t.Fatalf("%v %s: no frame", c.flags, c.task)
		}
		if c.answer && !s.alive(100*time.Millisecond) {
			t.Errorf("%v %s: it did not wait for its answer", c.flags, c.task)
		}
		s.answer(id, c.taken)
		if got := s.exit(patience); got != c.exit {
			t.Errorf("%v %s taken=%v: exit %d, want %d", c.flags, c.task, c.taken, got, c.exit)
		}
	}
}

func TestAnEscapingPanicSendsNoFrameAndExits1(t *testing.T) {
	s := launch(t, "--panic-escapes")
	s.startup("panic")
	if _, frame := s.frame(); frame != "" {
		t.Errorf("sent %s", frame)
	}
	if got := s.exit(patience); got != 1 {
		t.Errorf("exit %d, want 1", got)
	}
}
