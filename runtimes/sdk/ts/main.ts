// The runtime an Airflow TypeScript SDK maintainer points finalstate at: four
// task handlers under the Dag "finalstate", bound with the SDK's public API
// (`new TaskHandler(dagId, taskId, fn)` registered on a `Bundle`) and served
// by the bundle's own `serve()`, which reads --comm/--logs from argv itself.
// Every frame the supervisor sees is the SDK's; this program adds no protocol
// code.
//
//   success      returns
//   error        throws an Error
//   panic        throws a value that is not an Error (JavaScript has no panic:
//                this is what a runtime's `catch` meets when code throws a
//                string or a plain object)
//   cancellable  waits for its cancellation, the abort signal of
//                `getContext().signal` (fired on SIGTERM or SIGINT), and then
//                fails with the AbortError it raises; if no cancellation comes
//                within CANCELLABLE_WAIT_MS it returns normally
//
// Any other task id is not registered: the SDK's unknown-task path, which the
// checker reaches with the task id "unknown_task". Build it against your
// checkout with scripts/build-sdk-runtime ts PATH (runtimes/README.md,
// "Checking your SDK").
import { setTimeout as sleep } from "node:timers/promises";

import { Bundle, getContext, TaskHandler } from "apache-airflow-ts-sdk";

const DAG_ID = "finalstate";

/** How long `cancellable` waits for its cancellation before it gives up and succeeds. */
const CANCELLABLE_WAIT_MS = 60_000;

function success(): void {}

function failing(): never {
  throw new Error("finalstate: the task failed on purpose");
}

function panicking(): never {
  throw "finalstate: the task threw a string on purpose";
}

async function cancellable(): Promise<void> {
  // Rejects with an AbortError as soon as the signal fires (at once if it already has).
  await sleep(CANCELLABLE_WAIT_MS, undefined, { signal: getContext().signal });
}

const bundle = new Bundle();
bundle.register(
  new TaskHandler(DAG_ID, "success", success),
  new TaskHandler(DAG_ID, "error", failing),
  new TaskHandler(DAG_ID, "panic", panicking),
  new TaskHandler(DAG_ID, "cancellable", cancellable),
);
await bundle.serve(); // a rejection (a protocol error) ends the process with exit 1
