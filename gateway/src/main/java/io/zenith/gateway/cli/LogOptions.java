package io.zenith.gateway.cli;

import io.zenith.gateway.config.LogOutput;
import java.nio.file.Path;
import org.jspecify.annotations.Nullable;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Option;
import picocli.CommandLine.TypeConversionException;

/**
 * The logging options of the servers' {@code run} commands (a picocli mixin): {@code --log-format}
 * overrides the configuration file's {@code log_format}; {@code --log-file} logs to a file rolled
 * over by size instead of stderr (the control plane passes it). Not thread-safe (picocli fills it).
 */
final class LogOptions {
  @Option(
      names = "--log-format",
      paramLabel = "text|json",
      converter = FormatConverter.class,
      description =
          "Log lines as text or as one JSON object per line (default: log_format of the"
              + " configuration file, else text).")
  LogOutput.@Nullable Format format;

  /** A malformed format is a usage error (exit 2), as any malformed argument. */
  static final class FormatConverter implements ITypeConverter<LogOutput.Format> {
    @Override
    public LogOutput.Format convert(String value) {
      try {
        return LogOutput.Format.parse(value);
      } catch (IllegalArgumentException e) {
        throw new TypeConversionException(e.getMessage());
      }
    }
  }

  @Option(
      names = "--log-file",
      paramLabel = "FILE",
      description =
          "Log to FILE, rolled over at "
              + LogOutput.MAX_FILE_SIZE
              + " (older files beside it, at most "
              + LogOutput.TOTAL_SIZE_CAP
              + " in all), instead of stderr.")
  @Nullable Path file;

  /**
   * Configures logging from these options and the configuration's {@code log_format} (checked when
   * the configuration was loaded).
   */
  void apply(String configured) {
    LogOutput.configure(format != null ? format : LogOutput.Format.parse(configured), file);
  }
}
