package org.finalstate.probe;

import org.apache.airflow.sdk.Airflow;

/**
 * Task handlers for the Dag {@code finalstate_probe}: each task ends the way
 * its task_id says, so the frame the SDK sends for it can be observed.
 *
 * <ul>
 *   <li>{@code succeed} returns normally;
 *   <li>{@code fail} throws an {@link Exception};
 *   <li>{@code panic} throws an {@link Error}, which a {@code catch (Exception)}
 *       does not catch: the JVM's closest thing to a Go panic;
 *   <li>{@code exit_N} calls {@code System.exit(N)} from inside the task;
 *   <li>{@code signal_N} sends signal N to its own process (a JVM turns
 *       SIGTERM, SIGINT and SIGHUP into an orderly exit 128+N);
 *   <li>{@code hang} blocks forever, ignoring interrupts.
 * </ul>
 *
 * Any other task_id is not registered: the SDK's "unknown task" case.
 */
public class ProbeTasks {
  static final String DAG = "finalstate_probe";

  @Airflow.TaskHandler(dag = DAG, task = "succeed")
  public void succeed() {}

  @Airflow.TaskHandler(dag = DAG, task = "fail")
  public void fail() throws Exception {
    throw new Exception("finalstate probe: task failed on purpose");
  }

  @Airflow.TaskHandler(dag = DAG, task = "panic")
  public void panic() {
    throw new AssertionError("finalstate probe: task panicked on purpose");
  }

  @Airflow.TaskHandler(dag = DAG, task = "hang")
  public void hang() {
    while (true) {
      try {
        Thread.sleep(Long.MAX_VALUE);
      } catch (InterruptedException ignored) {
        // A hung task does not honour cancellation.
      }
    }
  }

  @Airflow.TaskHandler(dag = DAG, task = "exit_0")
  public void exit_0() { System.exit(0); }

  @Airflow.TaskHandler(dag = DAG, task = "exit_1")
  public void exit_1() { System.exit(1); }

  @Airflow.TaskHandler(dag = DAG, task = "exit_2")
  public void exit_2() { System.exit(2); }

  @Airflow.TaskHandler(dag = DAG, task = "exit_3")
  public void exit_3() { System.exit(3); }

  @Airflow.TaskHandler(dag = DAG, task = "exit_42")
  public void exit_42() { System.exit(42); }

  @Airflow.TaskHandler(dag = DAG, task = "exit_124")
  public void exit_124() { System.exit(124); }

  @Airflow.TaskHandler(dag = DAG, task = "exit_137")
  public void exit_137() { System.exit(137); }

  @Airflow.TaskHandler(dag = DAG, task = "exit_143")
  public void exit_143() { System.exit(143); }

  @Airflow.TaskHandler(dag = DAG, task = "exit_255")
  public void exit_255() { System.exit(255); }

  @Airflow.TaskHandler(dag = DAG, task = "signal_1")
  public void signal_1() throws Exception { killSelf(1); }

  @Airflow.TaskHandler(dag = DAG, task = "signal_2")
  public void signal_2() throws Exception { killSelf(2); }

  @Airflow.TaskHandler(dag = DAG, task = "signal_6")
  public void signal_6() throws Exception { killSelf(6); }

  @Airflow.TaskHandler(dag = DAG, task = "signal_9")
  public void signal_9() throws Exception { killSelf(9); }

  @Airflow.TaskHandler(dag = DAG, task = "signal_15")
  public void signal_15() throws Exception { killSelf(15); }

  /** Sends signal {@code n} to this JVM and waits for it to take effect. */
  static void killSelf(int n) throws Exception {
    long pid = ProcessHandle.current().pid();
    new ProcessBuilder("kill", "-" + n, Long.toString(pid)).inheritIO().start().waitFor();
    Thread.sleep(10_000);
    throw new IllegalStateException("finalstate probe: signal " + n + " did not end the process");
  }
}
