package main

// What the runtime does with SIGTERM, by phase: while it waits on the
// supervisor (--sigterm-waiting: for StartupDetails, or for the answer to its
// terminal frame) and while its task runs (--sigterm-running). Real signal
// handling: the supervisor's kill sends this process a real SIGTERM.

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// exitAfterSigterm is the exit of a runtime whose own shutdown handles SIGTERM: 128 + 15, as the JVM's.
const exitAfterSigterm = 143

// sigtermWatch holds the behaviour of the phase the runtime is in, and the
// running task's cancel; serve acts on each SIGTERM as that behaviour says.
type sigtermWatch struct {
	waiting, whileRunning string
	grace                 time.Duration
	signals               chan os.Signal

	mu           sync.Mutex
	behaviour    string
	cancel       context.CancelFunc // the running task's context; nil while the runtime waits
	shutdown     func()             // the shutdown path of exits-143, before it exits (its hooks: a log line)
	graceStarted bool
}

// watchSigterm starts the watch in the waiting phase.
func watchSigterm(opts options) *sigtermWatch {
	w := &sigtermWatch{waiting: opts.sigtermWaiting, whileRunning: opts.sigtermRunning, grace: opts.grace,
		signals: make(chan os.Signal, 1)}
	w.enter(opts.sigtermWaiting)
	go w.serve()
	return w
}

// onShutdown sets what the shutdown path of exits-143 does before it exits.
func (w *sigtermWatch) onShutdown(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.shutdown = f
}

// enter makes b the behaviour from now on: SIGTERM's default disposition for
// dies (Go's own: the process dies of the signal), else this watch's.
func (w *sigtermWatch) enter(b string) {
	w.mu.Lock()
	w.behaviour = b
	w.mu.Unlock()
	if b == sigtermDies {
		signal.Reset(syscall.SIGTERM)
	} else {
		signal.Notify(w.signals, syscall.SIGTERM)
	}
}

// running runs t in the running phase, with a context that a SIGTERM cancels
// where the running behaviour says so (started is called once the phase is
// entered); the waiting phase follows.
func (w *sigtermWatch) running(t task, started func()) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.mu.Lock()
	w.cancel = cancel
	w.mu.Unlock()
	w.enter(w.whileRunning)
	started()
	err := t(ctx)
	w.mu.Lock()
	w.cancel = nil
	w.mu.Unlock()
	w.enter(w.waiting)
	return err
}

func (w *sigtermWatch) serve() {
	for range w.signals {
		w.mu.Lock()
		behaviour, cancel, shutdown := w.behaviour, w.cancel, w.shutdown
		startGrace := behaviour == sigtermGraceThenExit1 && !w.graceStarted
		w.graceStarted = w.graceStarted || startGrace
		w.mu.Unlock()
		switch behaviour {
		case sigtermDies: // caught as the disposition went back to the default: die of it all the same
			signal.Reset(syscall.SIGTERM)
			syscall.Kill(os.Getpid(), syscall.SIGTERM)
		case sigtermExits143: // the connections are left to the exit to close: the runtime's own path must not end it first
			fmt.Fprintln(os.Stderr, "go-runtime: SIGTERM: shutting down")
			if shutdown != nil {
				shutdown()
			}
			os.Exit(exitAfterSigterm)
		case sigtermTraps: // nothing: only SIGKILL ends it
		case sigtermCancels, sigtermGraceThenExit1:
			if cancel != nil {
				cancel()
			}
			if startGrace {
				time.AfterFunc(w.grace, func() {
					fmt.Fprintf(os.Stderr, "go-runtime: still running %v after SIGTERM: exit 1\n", w.grace)
					os.Exit(1)
				})
			}
		}
	}
}
