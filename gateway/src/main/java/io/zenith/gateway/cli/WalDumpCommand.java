package io.zenith.gateway.cli;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonFactoryBuilder;
import com.fasterxml.jackson.core.JsonGenerator;
import io.zenith.ingest.wal.BlockRef;
import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.RecordDecoder;
import io.zenith.ingest.wal.ResourceManager;
import io.zenith.ingest.wal.records.PgRecords;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalFormatException;
import io.zenith.wal.WalRecordAssembler;
import io.zenith.wal.WalSegmentFiles;
import io.zenith.wal.WalSegmentName;
import io.zenith.wal.WalStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code zenith wal dump}: prints the records of WAL segment files, one line each, like {@code
 * pg_waldump -b} (or one JSON object per line, or statistics).
 *
 * <p>A directory is read like {@code pg_waldump -p}: its segment files in name order, from the
 * first one (or the one holding {@code --start}) as long as they are consecutive. Reading ends
 * cleanly at the end of the WAL (never-written bytes) or where a file was cut short; malformed WAL
 * is an error naming the LSN and the file.
 */
@Command(
    name = "dump",
    mixinStandardHelpOptions = true,
    description = "Print the records of PostgreSQL 15 WAL segment files.",
    footer = {
      "",
      "Examples:",
      "  zenith wal dump $PGDATA/pg_wal",
      "  zenith wal dump --json --start 0/2000028 000000010000000000000002",
      "  zenith wal dump --stats pg_wal"
    })
final class WalDumpCommand implements Callable<Integer> {

  @Option(
      names = "--json",
      description = "One JSON object per record (lsn, end, prev, rmgr, type, len, xid, blocks).")
  boolean json;

  @Option(
      names = "--stats",
      description = "Print counts and sizes per resource manager and record type instead.")
  boolean stats;

  @Option(
      names = {"-s", "--start"},
      paramLabel = "LSN",
      description = "First record to print: the first one at or after this LSN.")
  Lsn start;

  @Option(
      names = {"-e", "--end"},
      paramLabel = "LSN",
      description = "Stop before the first record at or after this LSN.")
  Lsn end;

  @Parameters(
      arity = "1..*",
      paramLabel = "SEGMENT|DIR",
      description = "WAL segment files (consecutive), or a directory holding them.")
  List<Path> inputs;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    if (start != null && end != null && !start.isBefore(end)) {
      throw new UserException("--start " + start + " is not before --end " + end);
    }
    PrintWriter out = spec.commandLine().getOut();
    WalSegmentFiles.Sequence seq = WalSegmentFiles.sequence(resolveFiles());
    Lsn readFrom = seq.startLsn();
    if (start != null && start.isBefore(readFrom)) {
      throw new UserException(
          "--start " + start + " is before the first given segment (" + readFrom + ")");
    }
    WalRecordAssembler assembler =
        new WalRecordAssembler(
            readFrom, WalRecordAssembler.Options.DEFAULT.withSegmentSize(seq.segmentSize()));
    Output output = stats ? new StatsOutput() : json ? new JsonOutput(out) : new TextOutput(out);
    boolean[] stoppedAtEnd = {false};
    try {
      WalStream.records(WalSegmentFiles.read(seq, readFrom), assembler)
          .filter(r -> start == null || !r.lsn().isBefore(start))
          .takeWhile(
              r -> {
                stoppedAtEnd[0] = end != null && !r.lsn().isBefore(end);
                return !stoppedAtEnd[0];
              })
          .doOnNext(r -> output.record(RecordDecoder.decode(r)))
          .blockLast();
    } catch (WalFormatException e) {
      output.finish(out);
      out.flush();
      throw e.lsn().isValid() ? e.inFile(seq.fileNameFor(e.lsn())) : e;
    } catch (UncheckedIOException e) {
      output.finish(out);
      throw e;
    }
    output.finish(out);
    out.flush();
    if (!stoppedAtEnd[0]) {
      assembler
          .incompleteRecordStart()
          .ifPresent(
              at ->
                  spec.commandLine()
                      .getErr()
                      .println(
                          "zenith wal dump: WAL ends with an incomplete record at "
                              + at
                              + " (the input was cut short there)"));
    }
    return 0;
  }

  /** The segment files to read, consecutive, starting with the one holding --start if given. */
  private List<Path> resolveFiles() throws IOException {
    if (inputs.size() == 1 && Files.isDirectory(inputs.getFirst())) {
      Path dir = inputs.getFirst();
      List<Path> listed = WalSegmentFiles.listSegments(dir);
      if (listed.isEmpty()) {
        throw new UserException("no WAL segment files in " + dir);
      }
      int segmentSize = WalSegmentFiles.readSegmentSize(listed.getFirst());
      // Names that look like segments but are impossible for this segment size are not ours.
      List<Path> all =
          listed.stream()
              .filter(
                  p ->
                      WalSegmentName.parse(
                              WalSegmentFiles.baseName(p.getFileName().toString()), segmentSize)
                          .isPresent())
              .toList();
      List<WalSegmentName> names =
          all.stream()
              .map(
                  p ->
                      WalSegmentName.parse(
                              WalSegmentFiles.baseName(p.getFileName().toString()), segmentSize)
                          .orElseThrow())
              .toList();
      int from = 0;
      if (start != null) {
        long seg = start.segmentNumber(segmentSize);
        from = -1;
        for (int i = 0; i < names.size(); i++) {
          if (names.get(i).segmentNumber() == seg) {
            from = i;
            break;
          }
        }
        if (from < 0) {
          throw new UserException("no segment in " + dir + " holds --start " + start);
        }
      }
      // Like pg_waldump, read on while the next segment exists; later files are not this WAL.
      List<Path> run = new ArrayList<>(List.of(all.get(from)));
      for (int i = from + 1; i < all.size(); i++) {
        if (!names.get(i).equals(names.get(i - 1).next())) {
          break;
        }
        run.add(all.get(i));
      }
      return run;
    }
    for (Path p : inputs) {
      if (Files.isDirectory(p)) {
        throw new UserException("give either one directory or segment files, not both: " + p);
      }
      if (!Files.exists(p)) {
        throw new NoSuchFileException(p.toString());
      }
    }
    return inputs;
  }

  private interface Output {
    void record(DecodedRecord r);

    default void finish(PrintWriter out) {}
  }

  /** pg_waldump's line format, with block references as {@code -b} prints them on one line. */
  private static final class TextOutput implements Output {
    private final PrintWriter out;
    private final StringBuilder sb = new StringBuilder(256);

    TextOutput(PrintWriter out) {
      this.out = out;
    }

    @Override
    public void record(DecodedRecord r) {
      sb.setLength(0);
      sb.append(
          String.format(
              Locale.ROOT,
              "rmgr: %-11s len (rec/tot): %6d/%6d, tx: %10s, lsn: %s, prev %s, desc: %s",
              ResourceManager.nameOf(r.rmid()),
              r.totalLength() - r.imageBytes(),
              r.totalLength(),
              Integer.toUnsignedString(r.xid()),
              lsn8(r.lsn()),
              lsn8(r.prev()),
              describe(r)));
      for (BlockRef b : r.blocks()) {
        sb.append(", blkref #").append(b.id()).append(": rel ").append(b.rel());
        if (b.fork() != ForkNumber.MAIN) {
          sb.append(" fork ").append(b.fork().pgName());
        }
        sb.append(" blk ").append(Integer.toUnsignedString(b.blockNumber()));
        if (b.image() != null) {
          sb.append(b.image().apply() ? " FPW" : " FPW for WAL verification");
        }
      }
      out.println(sb);
    }
  }

  /** One JSON object per line. */
  private static final class JsonOutput implements Output {
    private static final JsonFactory FACTORY =
        new JsonFactoryBuilder().rootValueSeparator("\n").build();
    private final JsonGenerator gen;
    private boolean any;

    JsonOutput(PrintWriter out) {
      try {
        gen = FACTORY.createGenerator(out);
        gen.disable(JsonGenerator.Feature.AUTO_CLOSE_TARGET);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    @Override
    public void record(DecodedRecord r) {
      try {
        gen.writeStartObject();
        gen.writeStringField("lsn", r.lsn().toString());
        gen.writeStringField("end", r.end().toString());
        gen.writeStringField("prev", r.prev().toString());
        gen.writeStringField("rmgr", ResourceManager.nameOf(r.rmid()));
        gen.writeStringField("type", r.typeName());
        gen.writeNumberField("len", r.totalLength());
        gen.writeNumberField("xid", Integer.toUnsignedLong(r.xid()));
        gen.writeArrayFieldStart("blocks");
        for (BlockRef b : r.blocks()) {
          gen.writeStartObject();
          gen.writeNumberField("id", b.id());
          gen.writeStringField("rel", b.rel().toString());
          gen.writeStringField("fork", b.fork().pgName());
          gen.writeNumberField("blk", b.blockNumberUnsigned());
          gen.writeBooleanField("image", b.hasImage());
          gen.writeBooleanField("apply_image", b.appliesImage());
          gen.writeBooleanField("will_init", b.willInit());
          gen.writeEndObject();
        }
        gen.writeEndArray();
        gen.writeEndObject();
        any = true;
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    @Override
    public void finish(PrintWriter out) {
      try {
        gen.flush();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      if (any) {
        out.println();
      }
    }
  }

  /** Counts and bytes per resource manager and record type, like pg_waldump --stats=record. */
  private static final class StatsOutput implements Output {
    private final Map<String, long[]> byType = new TreeMap<>();

    @Override
    public void record(DecodedRecord r) {
      String key = ResourceManager.nameOf(r.rmid()) + "/" + r.typeName();
      long[] s = byType.computeIfAbsent(key, k -> new long[3]);
      s[0]++;
      s[1] += r.totalLength() - r.imageBytes();
      s[2] += r.imageBytes();
    }

    @Override
    public void finish(PrintWriter out) {
      long n = 0;
      long rec = 0;
      long fpi = 0;
      for (long[] s : byType.values()) {
        n += s[0];
        rec += s[1];
        fpi += s[2];
      }
      String fmt = "%-32s %10s (%6s) %14s (%6s) %14s (%6s) %14s (%6s)%n";
      out.printf(
          Locale.ROOT,
          fmt,
          "Type",
          "N",
          "%",
          "Record size",
          "%",
          "FPI size",
          "%",
          "Combined size",
          "%");
      out.printf(
          Locale.ROOT,
          fmt,
          "----",
          "-",
          "-",
          "-----------",
          "-",
          "--------",
          "-",
          "-------------",
          "-");
      for (Map.Entry<String, long[]> e : byType.entrySet()) {
        long[] s = e.getValue();
        out.printf(
            Locale.ROOT,
            fmt,
            e.getKey(),
            s[0],
            pct(s[0], n),
            s[1],
            pct(s[1], rec),
            s[2],
            pct(s[2], fpi),
            s[1] + s[2],
            pct(s[1] + s[2], rec + fpi));
      }
      out.printf(
          Locale.ROOT,
          fmt,
          "Total",
          n,
          "",
          rec,
          pct(rec, rec + fpi),
          fpi,
          pct(fpi, rec + fpi),
          rec + fpi,
          "");
    }

    private static String pct(long part, long whole) {
      return whole == 0 ? "0.00" : String.format(Locale.ROOT, "%.2f", 100.0 * part / whole);
    }
  }

  /** pg_waldump's desc column: the type name, then the decoded fields where we decode them. */
  private static String describe(DecodedRecord r) {
    String fields = PgRecords.parse(r).describe();
    return fields.isEmpty() ? r.typeName() : r.typeName() + " " + fields;
  }

  /** An LSN as pg_waldump prints it: {@code %X/%08X}. */
  static String lsn8(Lsn lsn) {
    long v = lsn.value();
    return String.format(Locale.ROOT, "%X/%08X", v >>> 32, v & 0xFFFF_FFFFL);
  }
}
