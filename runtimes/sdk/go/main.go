// Command finalstate-check is the runtime an Airflow Go SDK maintainer points
// finalstate at: three task handlers under the Dag "finalstate", registered
// with the SDK's public API (package airflow: Bundle, TaskHandler, and the
// bundle's own Serve, which reads --comm/--logs itself). Every frame the
// supervisor sees is the SDK's; this program adds no protocol code.
//
//	success   returns nil
//	error     returns an error
//	panic     panics
//
// Any other task id is not registered: the SDK's unknown-task path, which the
// checker reaches with the task id "unknown_task". Build it against your
// checkout with scripts/build-sdk-runtime go PATH (runtimes/README.md,
// "Checking your SDK").
package main

import (
	"errors"
	"log"

	"github.com/apache/airflow/go-sdk/airflow"
)

const dagID = "finalstate"

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

func main() {
	bundle := airflow.Bundle()
	bundle.Register(
		airflow.TaskHandler(dagID, "success", success),
		airflow.TaskHandler(dagID, "error", failing),
		airflow.TaskHandler(dagID, "panic", panicking),
	)
	if err := bundle.Serve(); err != nil { // Serve's error is a protocol error: exit non-zero
		log.Fatal(err)
	}
}
