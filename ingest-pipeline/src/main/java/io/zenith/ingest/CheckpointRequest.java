package io.zenith.ingest;

import java.util.concurrent.atomic.AtomicBoolean;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Sinks;

/**
 * A request to make everything ingested so far durable ({@link IngestPipeline#checkpoint()}): taken
 * exactly once, by the freeze stage or, when the pipeline is not running, by the pipeline itself;
 * completed once the flush that covers it is durable. Thread-safe.
 */
final class CheckpointRequest {
  private final AtomicBoolean taken = new AtomicBoolean();
  private final Sinks.One<Void> done = Sinks.one();
  private volatile boolean finished;

  /** Claims the request; true for exactly one caller. */
  boolean take() {
    return taken.compareAndSet(false, true);
  }

  void complete() {
    finished = true;
    done.tryEmitEmpty();
  }

  void fail(Throwable e) {
    finished = true;
    done.tryEmitError(e);
  }

  boolean finished() {
    return finished;
  }

  /** Completes once the checkpoint is durable; errors if its flush failed. */
  Mono<Void> done() {
    return done.asMono();
  }
}
