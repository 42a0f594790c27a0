// Command go-probe is finalstate's probe runtime for the released Airflow Go SDK.
//
// It is an ordinary Go SDK bundle: one Dag, finalstate_probe, whose tasks end
// the way their task_id says. Launched with --comm=host:port --logs=host:port
// (what Airflow's _PopenActivitySubprocess appends), the SDK's own
// bundlev1server.Serve runs in coordinator mode and decides which terminal
// frame to send. The probe adds no protocol code of its own: whatever frame
// reaches the supervisor is the SDK's behaviour, which is the point.
//
//	succeed     returns nil
//	fail        returns an error
//	panic       panics
//	exit_N      os.Exit(N) from inside the task (N in exitCodes)
//	signal_N    kills its own process with signal N (N in signalNumbers)
//	hang        blocks forever, ignoring cancellation
//
// Any other task_id is not registered: that is the SDK's "unknown task" case.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	v1 "github.com/apache/airflow/go-sdk/bundle/bundlev1"
	"github.com/apache/airflow/go-sdk/bundle/bundlev1/bundlev1server"
)

const (
	dagID      = "finalstate_probe"
	bundleName = "finalstate_probe"
)

var bundleVersion = "1"

// The exit codes and signals registered as exit_N / signal_N. A task_id
// outside these sets is unknown to the bundle, on purpose.
var (
	exitCodes     = []int{0, 1, 2, 3, 42, 124, 137, 143, 255}
	signalNumbers = []int{1, 2, 6, 9, 15}
)

type probeBundle struct{}

var _ v1.BundleProvider = probeBundle{}

func (probeBundle) GetBundleVersion() v1.BundleInfo {
	return v1.BundleInfo{Name: bundleName, Version: &bundleVersion}
}

func (probeBundle) RegisterDags(registry v1.Registry) error {
	dag := addDag(registry, dagID)
	register(dag, "succeed", succeed)
	register(dag, "fail", fail)
	register(dag, "panic", panicking)
	register(dag, "hang", hang)
	for _, n := range exitCodes {
		register(dag, fmt.Sprintf("exit_%d", n), exitWith(n))
	}
	for _, n := range signalNumbers {
		register(dag, fmt.Sprintf("signal_%d", n), killSelfWith(n))
	}
	return nil
}

func succeed(ctx context.Context, log *slog.Logger) error {
	log.InfoContext(ctx, "finalstate probe: succeeding")
	return nil
}

func fail(ctx context.Context, log *slog.Logger) error {
	log.InfoContext(ctx, "finalstate probe: failing")
	return errors.New("finalstate probe: task failed on purpose")
}

func panicking(ctx context.Context, log *slog.Logger) error {
	log.InfoContext(ctx, "finalstate probe: panicking")
	panic("finalstate probe: task panicked on purpose")
}

// hang never returns, and does not honour ctx: only a signal ends it. A timer
// sleep (rather than an empty select) keeps the Go runtime from declaring a
// deadlock.
func hang(ctx context.Context, log *slog.Logger) error {
	log.InfoContext(ctx, "finalstate probe: hanging")
	for {
		time.Sleep(time.Hour)
	}
}

func exitWith(code int) func(context.Context, *slog.Logger) error {
	return func(ctx context.Context, log *slog.Logger) error {
		log.InfoContext(ctx, "finalstate probe: exiting", "code", code)
		os.Exit(code)
		return nil
	}
}

// killSelfWith restores the default disposition of signal n (the SDK may
// catch SIGINT/SIGTERM to cancel the task context) and sends it to this
// process, so the process really ends by that signal where the OS allows.
func killSelfWith(n int) func(context.Context, *slog.Logger) error {
	sig := syscall.Signal(n)
	return func(ctx context.Context, log *slog.Logger) error {
		log.InfoContext(ctx, "finalstate probe: killing self", "signal", n)
		signal.Reset(sig)
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			return fmt.Errorf("finalstate probe: kill(self, %d): %w", n, err)
		}
		time.Sleep(10 * time.Second)
		return fmt.Errorf("finalstate probe: signal %d did not end the process", n)
	}
}

// addDag and register call the SDK's registry by method name. The names are
// stable across the Go SDK 1.0 line, but their optional parameters are not
// (AddTaskWithName grew a TaskSpec and an upstream list; AddDag a DagSpec;
// a proposal renames AddDag to AddMixedLangDag). Passing zero values for
// every parameter after the ids keeps the probe building against whichever
// release go.mod pins, and registers plain tasks with no spec and no edges.
func addDag(registry any, id string) any {
	for _, name := range []string{"AddMixedLangDag", "AddDag"} {
		if m := reflect.ValueOf(registry).MethodByName(name); m.IsValid() {
			return callWithZeroTail(m, id)[0].Interface()
		}
	}
	panic(fmt.Sprintf("finalstate probe: registry %T has no AddDag method", registry))
}

func register(dag any, taskID string, fn any) {
	m := reflect.ValueOf(dag).MethodByName("AddTaskWithName")
	if !m.IsValid() {
		panic(fmt.Sprintf("finalstate probe: Dag handle %T has no AddTaskWithName method", dag))
	}
	callWithZeroTail(m, taskID, fn)
}

// callWithZeroTail calls m with the given leading arguments, zero values for
// any further fixed parameters, and nothing for a variadic tail.
func callWithZeroTail(m reflect.Value, leading ...any) []reflect.Value {
	t := m.Type()
	fixed := t.NumIn()
	if t.IsVariadic() {
		fixed--
	}
	if fixed < len(leading) {
		panic(fmt.Sprintf("finalstate probe: %v takes fewer parameters than expected", t))
	}
	args := make([]reflect.Value, 0, fixed)
	for _, a := range leading {
		args = append(args, reflect.ValueOf(a))
	}
	for i := len(leading); i < fixed; i++ {
		args = append(args, reflect.Zero(t.In(i)))
	}
	return m.Call(args)
}

func main() {
	if err := bundlev1server.Serve(probeBundle{}); err != nil {
		log.Fatal(err)
	}
}
