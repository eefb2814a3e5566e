package io.zenith.wal.remote;

import java.io.IOException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import org.jspecify.annotations.Nullable;
import software.amazon.awssdk.core.exception.ApiCallAttemptTimeoutException;
import software.amazon.awssdk.core.exception.ApiCallTimeoutException;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.services.s3.model.NoSuchKeyException;
import software.amazon.awssdk.services.s3.model.S3Exception;

/**
 * How the SDK's failures become {@link RemoteStorageException} kinds. The SDK has retried what it
 * considers retryable by the time a failure arrives here; this only classifies the last one.
 */
final class S3Errors {
  private S3Errors() {}

  static RemoteStorageException translate(
      String where, String op, @Nullable RemoteKey key, Throwable t) {
    Throwable e = t;
    while ((e instanceof CompletionException || e instanceof ExecutionException)
        && e.getCause() != null) {
      e = e.getCause();
    }
    if (e instanceof RemoteStorageException r) {
      return r;
    }
    String head = where + ": " + op + (key == null ? "" : " " + key);
    RemoteStorageException.Kind kind = kind(e);
    String what =
        switch (kind) {
          case NOT_FOUND -> "no such object";
          case TRANSIENT, PERMANENT -> "failed: " + oneLine(e);
        };
    return new RemoteStorageException(kind, key, head + ": " + what, e);
  }

  static RemoteStorageException.Kind kind(Throwable e) {
    if (e instanceof NoSuchKeyException) {
      return RemoteStorageException.Kind.NOT_FOUND;
    }
    if (e instanceof S3Exception s3) {
      int status = s3.statusCode();
      String code = s3.awsErrorDetails() == null ? null : s3.awsErrorDetails().errorCode();
      if (status == 404 && !"NoSuchBucket".equals(code) && !"NoSuchUpload".equals(code)) {
        return RemoteStorageException.Kind.NOT_FOUND;
      }
      if (status >= 500 || status == 429 || status == 408 || "SlowDown".equals(code)) {
        return RemoteStorageException.Kind.TRANSIENT;
      }
      return RemoteStorageException.Kind.PERMANENT;
    }
    if (e instanceof SdkClientException) {
      // Connection refused, reset, closed, timed out: an I/O problem or a timeout somewhere in the
      // chain (the SDK wraps an attempt's timeout in its own cancellation exceptions). A
      // client-side error without one (no credentials, a bad request) does not go away.
      int depth = 0;
      for (Throwable c = e; c != null && depth < 20; c = c.getCause(), depth++) {
        if (c instanceof java.nio.file.NoSuchFileException
            || c instanceof java.nio.file.AccessDeniedException) {
          return RemoteStorageException.Kind.PERMANENT; // the local file of an upload
        }
        if (c instanceof IOException
            || c instanceof io.netty.channel.ChannelException
            || c instanceof ApiCallTimeoutException
            || c instanceof ApiCallAttemptTimeoutException
            || c instanceof java.util.concurrent.TimeoutException) {
          return RemoteStorageException.Kind.TRANSIENT;
        }
      }
      return RemoteStorageException.Kind.PERMANENT;
    }
    return RemoteStorageException.Kind.PERMANENT;
  }

  /** The first line of the exception's message (the SDK's can run over many). */
  static String oneLine(Throwable e) {
    String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    int nl = m.indexOf('\n');
    return nl < 0 ? m : m.substring(0, nl);
  }

  /** An S3 416: the range starts at or beyond the object's end. */
  static boolean rangeNotSatisfiable(Throwable t) {
    Throwable e = t;
    while ((e instanceof CompletionException || e instanceof ExecutionException)
        && e.getCause() != null) {
      e = e.getCause();
    }
    return e instanceof S3Exception s3 && s3.statusCode() == 416;
  }
}
