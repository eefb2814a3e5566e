package io.zenith.gateway.config;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.JsonEncoder;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.OutputStreamAppender;
import ch.qos.logback.core.encoder.Encoder;
import ch.qos.logback.core.rolling.RollingFileAppender;
import ch.qos.logback.core.rolling.SizeAndTimeBasedRollingPolicy;
import ch.qos.logback.core.util.FileSize;
import java.nio.file.Path;
import java.util.Locale;
import org.jspecify.annotations.Nullable;
import org.slf4j.LoggerFactory;

/**
 * Where and how a server process logs ({@code --log-format}, {@code log_format}, {@code
 * --log-file}): text lines as {@code logback.xml} writes them, or one JSON object per line
 * (Logback's {@link JsonEncoder}: {@code timestamp} in epoch milliseconds, {@code level}, {@code
 * threadName}, {@code loggerName}, {@code mdc} with {@code tenant} and {@code timeline}, {@code
 * formattedMessage}, {@code throwable}); to stderr, or to a file that rolls over by size (and day),
 * keeping a bounded total.
 *
 * <p>Called once, at the start of a {@code run} command, before the server starts. Thread-safe as
 * Logback's configuration is.
 */
public final class LogOutput {
  private LogOutput() {}

  /** The format of log lines. */
  public enum Format {
    TEXT,
    JSON;

    /** {@code text} or {@code json} (any case); anything else is an IllegalArgumentException. */
    public static Format parse(String s) {
      return switch (s.toLowerCase(Locale.ROOT)) {
        case "text" -> TEXT;
        case "json" -> JSON;
        default ->
            throw new IllegalArgumentException("log format '" + s + "' is not one of: text, json");
      };
    }
  }

  /** The size at which a log file rolls over. */
  public static final String MAX_FILE_SIZE = "64MB";

  /** Rolled-over files are deleted beyond this total (or this many days). */
  public static final String TOTAL_SIZE_CAP = "1GB";

  static final int MAX_HISTORY_DAYS = 14;

  /** The text layout of file logs: as {@code logback.xml}'s, with the date. */
  static final String TEXT_PATTERN =
      "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5level [%thread] %logger{20} %X{tenant:-} %X{timeline:-} -"
          + " %msg%n";

  /**
   * Replaces the root logger's appenders by one that writes {@code format} to {@code file} (rolled
   * over at {@link #MAX_FILE_SIZE}, as {@code <stem>.<date>.<n>.log} beside it) or, when it is
   * null, to stderr. Text to stderr keeps {@code logback.xml}'s appender as it is.
   */
  public static void configure(Format format, @Nullable Path file) {
    if (format == Format.TEXT && file == null) {
      return;
    }
    LoggerContext ctx = (LoggerContext) LoggerFactory.getILoggerFactory();
    Encoder<ILoggingEvent> encoder = encoder(ctx, format);
    OutputStreamAppender<ILoggingEvent> appender =
        file == null ? console(ctx, encoder) : rolling(ctx, encoder, file);
    Logger root = ctx.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    root.detachAndStopAllAppenders();
    root.addAppender(appender);
  }

  private static Encoder<ILoggingEvent> encoder(LoggerContext ctx, Format format) {
    if (format == Format.JSON) {
      JsonEncoder json = new JsonEncoder();
      json.setContext(ctx);
      // What a reader needs per line; the raw template and its arguments only repeat it.
      json.setWithSequenceNumber(false);
      json.setWithNanoseconds(false);
      json.setWithContext(false);
      json.setWithArguments(false);
      json.setWithMessage(false);
      json.setWithFormattedMessage(true);
      json.start();
      return json;
    }
    PatternLayoutEncoder text = new PatternLayoutEncoder();
    text.setContext(ctx);
    text.setPattern(TEXT_PATTERN);
    text.start();
    return text;
  }

  private static OutputStreamAppender<ILoggingEvent> console(
      LoggerContext ctx, Encoder<ILoggingEvent> encoder) {
    ConsoleAppender<ILoggingEvent> a = new ConsoleAppender<>();
    a.setContext(ctx);
    a.setName("STDERR");
    a.setTarget("System.err");
    a.setEncoder(encoder);
    a.start();
    return a;
  }

  private static OutputStreamAppender<ILoggingEvent> rolling(
      LoggerContext ctx, Encoder<ILoggingEvent> encoder, Path file) {
    Path abs = file.toAbsolutePath();
    String name = abs.getFileName().toString();
    String stem = name.endsWith(".log") ? name.substring(0, name.length() - 4) : name;
    RollingFileAppender<ILoggingEvent> a = new RollingFileAppender<>();
    a.setContext(ctx);
    a.setName("FILE");
    a.setFile(abs.toString());
    a.setAppend(true);
    a.setEncoder(encoder);
    SizeAndTimeBasedRollingPolicy<ILoggingEvent> policy = new SizeAndTimeBasedRollingPolicy<>();
    policy.setContext(ctx);
    policy.setParent(a);
    policy.setFileNamePattern(abs.resolveSibling(stem + ".%d{yyyy-MM-dd}.%i.log").toString());
    policy.setMaxFileSize(FileSize.valueOf(MAX_FILE_SIZE));
    policy.setTotalSizeCap(FileSize.valueOf(TOTAL_SIZE_CAP));
    policy.setMaxHistory(MAX_HISTORY_DAYS);
    policy.start();
    a.setRollingPolicy(policy);
    a.start();
    return a;
  }
}
