package io.zenith.it.wal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.zenith.wal.Lsn;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * One WAL record as a dump tool prints it, reduced to what both {@code zenith wal dump --json} and
 * {@code pg_waldump -b} show: position, back-link, resource manager, type, total length, xid and
 * the block references. Equal records mean the two tools read the same record the same way.
 * Immutable.
 *
 * @param type the record type: the first word of pg_waldump's {@code desc:}
 * @param length {@code xl_tot_len}
 */
public record DumpedRecord(
    Lsn lsn, Lsn prev, String rmgr, String type, long length, long xid, List<Block> blocks) {

  /**
   * A block reference.
   *
   * @param image the record carries a full-page image of the block
   * @param applyImage redo restores that image ({@code BKPIMAGE_APPLY}); false for images that are
   *     only there for {@code wal_consistency_checking}
   */
  public record Block(
      int id, String rel, String fork, long blk, boolean image, boolean applyImage) {
    @Override
    public String toString() {
      return "#"
          + id
          + " "
          + rel
          + " "
          + fork
          + " "
          + blk
          + (image ? (applyImage ? " FPW" : " FPW-verify") : "");
    }
  }

  @Override
  public String toString() {
    return lsn + " prev " + prev + " " + rmgr + "/" + type + " len " + length + " xid " + xid + " "
        + blocks;
  }

  /** A record of {@code zenith wal dump --json} with the end LSN it also reports. */
  public record Zenith(DumpedRecord record, Lsn end) {}

  private static final ObjectMapper JSON = new ObjectMapper();

  /** Parses {@code zenith wal dump --json} output: one object per line. */
  public static List<Zenith> parseZenithJson(String output) {
    List<Zenith> records = new ArrayList<>();
    for (String line : output.lines().toList()) {
      if (line.isBlank()) {
        continue;
      }
      try {
        JsonNode n = JSON.readTree(line);
        List<Block> blocks = new ArrayList<>();
        for (JsonNode b : n.get("blocks")) {
          blocks.add(
              new Block(
                  b.get("id").asInt(),
                  b.get("rel").asText(),
                  b.get("fork").asText(),
                  b.get("blk").asLong(),
                  b.get("image").asBoolean(),
                  b.get("apply_image").asBoolean()));
        }
        records.add(
            new Zenith(
                new DumpedRecord(
                    Lsn.parse(n.get("lsn").asText()),
                    Lsn.parse(n.get("prev").asText()),
                    n.get("rmgr").asText(),
                    n.get("type").asText(),
                    n.get("len").asLong(),
                    n.get("xid").asLong(),
                    List.copyOf(blocks)),
                Lsn.parse(n.get("end").asText())));
      } catch (IOException | RuntimeException e) {
        throw new IllegalStateException("not a zenith wal dump --json line: " + line, e);
      }
    }
    return records;
  }

  /**
   * The head of a record line as PostgreSQL 15's {@code XLogDumpDisplayRecord} prints it: {@code
   * rmgr: %-11s len (rec/tot): %6u/%6u, tx: %10u, lsn: %X/%08X, prev %X/%08X, desc: <type> ...}.
   */
  private static final Pattern RECORD_LINE =
      Pattern.compile(
          "rmgr: (\\S+) +len \\(rec/tot\\): +(\\d+)/ *(\\d+), tx: +(\\d+),"
              + " lsn: ([0-9A-F]+/[0-9A-F]+), prev ([0-9A-F]+/[0-9A-F]+), desc: (\\S+)");

  /**
   * A block line of {@code -b} ({@code XLogRecGetBlockRefInfo} with {@code detailed_format}): a
   * tab, {@code blkref #%d: rel %u/%u/%u fork %s blk %u}, then {@code " (FPW)"} or {@code " (FPW
   * for WAL verification)"} and hole / compression details when the block has an image.
   */
  private static final Pattern BLOCK_LINE =
      Pattern.compile(
          "\tblkref #(\\d+): rel (\\d+/\\d+/\\d+) fork (\\S+) blk (\\d+)"
              + "( \\(FPW( for WAL verification)?\\))?(;.*)?");

  /** Longest prefix of a record line the pattern needs (desc can be megabytes of hex). */
  private static final int RECORD_HEAD_CHARS = 400;

  /**
   * What {@code pg_waldump -b} printed: the records, and the head of each record line up to and
   * including the type ({@code rmgr: … desc: TYPE}).
   */
  record PgWaldumpOutput(List<DumpedRecord> records, List<String> heads) {}

  /** Parses {@code pg_waldump -b} output. Any line it does not understand is an error. */
  static PgWaldumpOutput parsePgWaldump(Path file) throws IOException {
    List<DumpedRecord> records = new ArrayList<>();
    List<String> heads = new ArrayList<>();
    try (BufferedReader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      String line;
      Matcher head = RECORD_LINE.matcher("");
      Matcher block = BLOCK_LINE.matcher("");
      List<Block> blocks = null;
      String[] pending = null;
      while ((line = r.readLine()) != null) {
        if (line.startsWith("rmgr: ")) {
          if (pending != null) {
            records.add(toRecord(pending, blocks));
          }
          String prefix = line.substring(0, Math.min(line.length(), RECORD_HEAD_CHARS));
          if (!head.reset(prefix).lookingAt()) {
            throw new IllegalStateException("unexpected pg_waldump record line: " + prefix);
          }
          heads.add(prefix.substring(0, head.end()));
          pending = new String[7];
          for (int i = 0; i < 7; i++) {
            pending[i] = head.group(i + 1);
          }
          blocks = new ArrayList<>();
        } else if (line.startsWith("\tblkref #") && blocks != null) {
          if (!block.reset(line).matches()) {
            throw new IllegalStateException("unexpected pg_waldump block line: " + line);
          }
          boolean image = block.group(5) != null;
          blocks.add(
              new Block(
                  Integer.parseInt(block.group(1)),
                  block.group(2),
                  block.group(3),
                  Long.parseLong(block.group(4)),
                  image,
                  image && block.group(6) == null));
        } else {
          throw new IllegalStateException(
              "unexpected pg_waldump output line: "
                  + line.substring(0, Math.min(line.length(), RECORD_HEAD_CHARS)));
        }
      }
      if (pending != null) {
        records.add(toRecord(pending, blocks));
      }
    }
    return new PgWaldumpOutput(records, heads);
  }

  /**
   * The head of a line of {@code zenith wal dump}'s text output, comparable with {@link
   * PgWaldumpOutput#heads()}: everything up to and including the type after {@code desc: }.
   */
  static String textHead(String line) {
    int desc = line.indexOf(", desc: ");
    if (desc < 0) {
      throw new IllegalStateException("not a zenith wal dump line: " + line);
    }
    int from = desc + ", desc: ".length();
    int to = from;
    while (to < line.length() && line.charAt(to) != ',' && line.charAt(to) != ' ') {
      to++;
    }
    return line.substring(0, to);
  }

  private static DumpedRecord toRecord(String[] g, List<Block> blocks) {
    // g: rmgr, rec_len, tot_len, xid, lsn, prev, type
    return new DumpedRecord(
        Lsn.parse(g[4]),
        Lsn.parse(g[5]),
        g[0],
        g[6],
        Long.parseLong(g[2]),
        Long.parseLong(g[3]),
        List.copyOf(blocks));
  }

  /** Up to {@code max} records around index {@code i}, one per line, for failure messages. */
  static String around(List<DumpedRecord> records, int i, int max) {
    int from = Math.max(0, i - 1);
    int to = Math.min(records.size(), from + max);
    return records.subList(from, to).stream()
        .map(r -> "    " + r)
        .collect(Collectors.joining("\n", "", to < records.size() ? "\n    …" : ""));
  }
}
