package org.finalstate.probe;

import org.apache.airflow.sdk.Bundle;
import org.apache.airflow.sdk.Server;

/**
 * Entry point of finalstate's Java probe runtime.
 *
 * <p>Launched with {@code --comm=host:port --logs=host:port} (what Airflow's
 * {@code _PopenActivitySubprocess} appends), the SDK's own {@link Server} runs
 * the coordinator protocol and picks the terminal frame; the probe only
 * supplies task bodies, in {@link ProbeTasks}.
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) {
    Server.create(args).serve(new Bundle().register(ProbeTasks.class));
  }
}
