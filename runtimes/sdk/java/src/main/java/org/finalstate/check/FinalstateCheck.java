package org.finalstate.check;

import org.apache.airflow.sdk.Bundle;
import org.apache.airflow.sdk.Client;
import org.apache.airflow.sdk.Context;
import org.apache.airflow.sdk.Server;
import org.apache.airflow.sdk.Task;

/**
 * The runtime an Airflow Java SDK maintainer points finalstate at: four tasks under the Dag
 * "finalstate", registered with the SDK's public API ({@code Bundle.register}) and run by the SDK's
 * own {@code Server}, which reads {@code --comm}/{@code --logs} itself. Every frame the supervisor sees
 * is the SDK's.
 *
 * <ul>
 *   <li>{@code success} returns normally;
 *   <li>{@code error} throws an {@link Exception};
 *   <li>{@code panic} throws an {@link Error}, which a {@code catch (Exception)} does not catch;
 *   <li>{@code cancellable} sleeps until its thread is interrupted (how a JVM task is cancelled) and
 *       then fails with the {@link InterruptedException}; if no interrupt comes within {@link
 *       #CANCELLABLE_WAIT_MS} it returns normally.
 * </ul>
 *
 * Any other task id is not registered (the checker's {@code unknown_task}). See runtimes/README.md,
 * "Checking your SDK", for where it goes in a checkout and how to build it.
 */
public final class FinalstateCheck {
  /** How long {@code cancellable} waits for its interrupt before it gives up and succeeds. */
  static final long CANCELLABLE_WAIT_MS = 60_000;

  public static final class Success implements Task {
    @Override
    public void execute(Context context, Client client) {}
  }

  public static final class Failing implements Task {
    @Override
    public void execute(Context context, Client client) throws Exception {
      throw new Exception("finalstate: the task failed on purpose");
    }
  }

  public static final class Panicking implements Task {
    @Override
    public void execute(Context context, Client client) {
      throw new Error("finalstate: the task threw an Error on purpose");
    }
  }

  public static final class Cancellable implements Task {
    @Override
    public void execute(Context context, Client client) throws InterruptedException {
      Thread.sleep(CANCELLABLE_WAIT_MS);
    }
  }

  public static void main(String[] args) {
    var bundle =
        new Bundle()
            .register("finalstate", "success", Success.class)
            .register("finalstate", "error", Failing.class)
            .register("finalstate", "panic", Panicking.class)
            .register("finalstate", "cancellable", Cancellable.class);
    Server.create(args).serve(bundle);
  }
}
