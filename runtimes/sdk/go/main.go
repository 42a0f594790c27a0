// Command finalstate-check is the runtime an Airflow Go SDK maintainer points
// finalstate at: four task handlers under the Dag "finalstate", registered
// with the SDK's public API (package airflow: Bundle, TaskHandler, and the
// bundle's own Serve, which reads --comm/--logs itself). Every frame the
// supervisor sees is the SDK's; this program adds no protocol code.
//
//	success      returns nil
//	error        returns an error
//	panic        panics
//	cancellable  waits for its context to be cancelled (Serve cancels it on
//	             SIGTERM) and returns the context's error; if no cancellation
//	             comes within cancellableWait it returns nil
//
// Any other task id is not registered: the SDK's unknown-task path, which the
// checker reaches with the task id "unknown_task". Build it against your
// checkout with scripts/build-sdk-runtime go PATH (runtimes/README.md,
// "Checking your SDK").
package main

import (
	"errors"
	"log"
	"time"

	"github.com/apache/airflow/go-sdk/airflow"
)

const dagID = "finalstate"

// How long cancellable waits for its cancellation before it gives up and succeeds.
const cancellableWait = 60 * time.Second

func success(actx airflow.Context) error {
	actx.Logger().InfoContext(actx, "finalstate: succeeding")
	return nil
}

func failing(actx airflow.Context) error {
	return errors.New("finalstate: the task failed on purpose")
}

func panicking(actx airflow.Context) error {
	panic("finalstate: the task panicked on purpose")
}

func cancellable(actx airflow.Context) error {
	select {
	case <-actx.Done():
		return actx.Err()
	case <-time.After(cancellableWait):
		return nil
	}
}

func main() {
	bundle := airflow.Bundle()
	bundle.Register(
		airflow.TaskHandler(dagID, "success", success),
		airflow.TaskHandler(dagID, "error", failing),
		airflow.TaskHandler(dagID, "panic", panicking),
		airflow.TaskHandler(dagID, "cancellable", cancellable),
	)
	if err := bundle.Serve(); err != nil { // Serve's error is a protocol error: exit non-zero
		log.Fatal(err)
	}
}
