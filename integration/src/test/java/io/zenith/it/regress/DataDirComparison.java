package io.zenith.it.regress;

import io.zenith.page.PageKind;
import io.zenith.page.PageMasking;
import io.zenith.wal.ForkNumber;
import io.zenith.wal.LittleEndian;
import io.zenith.wal.WalFormat;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Compares every page of every relation file of two data directories of the same database system: a
 * compute's own (after a clean shutdown) and one built by the pageserver at the same LSN.
 *
 * <p>Compared: the files of {@code global/} and {@code base/<db>/} named like relation segments,
 * every fork but the free-space map (never WAL-logged); of unlogged relations (those with an {@code
 * init} fork) only the init fork, since their other forks are reset on restart. Temporary relations
 * ({@code t<backend>_<relnumber>}) do not match. Pages are compared after {@link PageMasking} for
 * the {@link PageKind} of the compute's page. Differences that are not mismatches, each counted:
 *
 * <ul>
 *   <li>pages that only one side has at the end of a file (or in a file only the compute has) and
 *       that PostgreSQL writes without WAL: all-zero pages (relation extension), and empty
 *       visibility-map pages with LSN 0 and no bit set ({@code vm_extend}, e.g. when VACUUM pins a
 *       map page and then sets no bit); a file only the compute has that holds anything else, or
 *       nothing at all (an existing empty fork), and any file only the basebackup has, are
 *       mismatches;
 *   <li>sequence pages whose {@code last_value} is ahead on the pageserver's side, in the direction
 *       of the sequence's increment (WAL logs {@code SEQ_LOG_VALS} values ahead); behind is a
 *       mismatch;
 *   <li>visibility-map pages whose bits the WAL does not carry: the latest full-page image of the
 *       page in the compute's WAL has the whole bitmap in its "hole" ({@code
 *       RelationCopyStorageUsingBuffer}, i.e. {@code CREATE DATABASE … STRATEGY WAL_LOG}, logs
 *       every fork with {@code log_newpage_buffer(buf, page_std=true)}, and a map page's bits lie
 *       between {@code pd_lower} and {@code pd_upper}, so PostgreSQL's own redo loses them too),
 *       the pageserver's bits are a subset of the compute's and everything else is equal.
 * </ul>
 *
 * <p>Also compared byte for byte: the SLRU segments every page of which comes from WAL ({@code
 * pg_xact}, {@code pg_multixact/offsets}, {@code members}; a zero page only one side has at the end
 * is not a difference) and the two-phase state files. Not thread-safe.
 */
public final class DataDirComparison {
  private static final Pattern REL_FILE =
      Pattern.compile("(\\d+)(?:_(fsm|vm|init))?(?:\\.(\\d+))?");

  /** One page (or file) that differs. */
  public record Mismatch(String file, int block, PageKind kind, String detail) {
    @Override
    public String toString() {
      return file + " block " + block + " (" + kind + "): " + detail;
    }
  }

  /** A sequence's {@code seqincrement} and {@code seqcycle}. */
  public record Sequence(long increment, boolean cycle) {}

  /** What the comparison knows besides the two directories. */
  public record Facts(
      Map<String, Sequence> sequences, java.util.Set<String> vmPagesImagedWithoutBits) {}

  final Map<PageKind, Integer> comparedByKind = new EnumMap<>(PageKind.class);
  public final List<Mismatch> mismatches = new ArrayList<>();
  final List<String> vmBitsNotInWal = new ArrayList<>();
  final List<String> oneSidedWithoutWal = new ArrayList<>();
  public int pagesCompared;
  int slruPagesCompared;
  int filesCompared;
  int zeroTailPages;
  int emptyVmPagesWithoutWal;
  int sequencesAhead;

  private final Path compute;
  private final Path rebuilt;
  private final Facts facts;

  private DataDirComparison(Path compute, Path rebuilt, Facts facts) {
    this.compute = compute;
    this.rebuilt = rebuilt;
    this.facts = facts;
  }

  /**
   * Compares {@code rebuilt} (the pageserver's) with {@code compute} (the compute's own).
   *
   * @param facts the compute's sequences by file ({@code base/<db>/<relfilenode>}) and the
   *     visibility-map pages ({@code base/<db>/<relfilenode>_vm#<block>}) whose latest full-page
   *     image in the compute's WAL left the bitmap out ({@link VmImageHoles})
   */
  public static DataDirComparison compare(Path compute, Path rebuilt, Facts facts) {
    DataDirComparison c = new DataDirComparison(compute, rebuilt, facts);
    try {
      TreeSet<String> dirs = new TreeSet<>();
      dirs.add("global");
      for (Path root : List.of(compute, rebuilt)) {
        try (Stream<Path> s = Files.list(root.resolve("base"))) {
          s.forEach(p -> dirs.add("base/" + p.getFileName()));
        }
      }
      for (String d : dirs) {
        c.compareDir(d);
      }
      for (String d : SLRU_DIRS) {
        c.compareSlru(d);
      }
      c.compareTwoPhaseFiles();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return c;
  }

  /** SLRUs whose every page comes from WAL (pg_subtrans is reset at startup, commit_ts is off). */
  private static final List<String> SLRU_DIRS =
      List.of("pg_xact", "pg_multixact/offsets", "pg_multixact/members");

  /** SLRU segments: every page byte for byte; zero pages only one side has are not WAL-logged. */
  private void compareSlru(String dir) throws IOException {
    TreeSet<String> names = new TreeSet<>();
    names.addAll(fileNames(compute.resolve(dir)));
    names.addAll(fileNames(rebuilt.resolve(dir)));
    for (String name : names) {
      String file = dir + "/" + name;
      byte[] theirs = readIfExists(compute.resolve(file));
      byte[] ours = readIfExists(rebuilt.resolve(file));
      filesCompared++;
      int theirBlocks = theirs.length / WalFormat.BLCKSZ;
      int ourBlocks = ours.length / WalFormat.BLCKSZ;
      for (int blk = 0; blk < Math.max(theirBlocks, ourBlocks); blk++) {
        byte[] a = page(ours, blk);
        byte[] b = page(theirs, blk);
        if (blk >= theirBlocks || blk >= ourBlocks) {
          if (isZero(blk >= theirBlocks ? a : b)) {
            zeroTailPages++;
            oneSidedWithoutWal.add(file + " block " + blk);
          } else {
            mismatches.add(
                new Mismatch(
                    file,
                    blk,
                    PageKind.OTHER,
                    blk >= theirBlocks ? "only in the basebackup" : "only on the compute"));
          }
          continue;
        }
        slruPagesCompared++;
        if (!Arrays.equals(a, b)) {
          int first = Arrays.mismatch(a, b);
          mismatches.add(
              new Mismatch(
                  file,
                  blk,
                  PageKind.OTHER,
                  String.format(
                      "SLRU page differs first at byte %d (basebackup 0x%02x, compute 0x%02x)",
                      first, a[first] & 0xFF, b[first] & 0xFF)));
        }
      }
    }
  }

  /** Two-phase state files of prepared transactions: equal, and on both sides. */
  private void compareTwoPhaseFiles() throws IOException {
    TreeSet<String> names = new TreeSet<>();
    names.addAll(fileNames(compute.resolve("pg_twophase")));
    names.addAll(fileNames(rebuilt.resolve("pg_twophase")));
    for (String name : names) {
      String file = "pg_twophase/" + name;
      filesCompared++;
      if (!Files.exists(compute.resolve(file)) || !Files.exists(rebuilt.resolve(file))) {
        mismatches.add(
            new Mismatch(
                file,
                -1,
                PageKind.OTHER,
                Files.exists(compute.resolve(file))
                    ? "only on the compute"
                    : "only in the basebackup"));
      } else if (!Arrays.equals(
          Files.readAllBytes(compute.resolve(file)), Files.readAllBytes(rebuilt.resolve(file)))) {
        mismatches.add(new Mismatch(file, -1, PageKind.OTHER, "two-phase state differs"));
      }
    }
  }

  private static List<String> fileNames(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(Files::isRegularFile).map(p -> p.getFileName().toString()).toList();
    }
  }

  private static byte[] readIfExists(Path p) throws IOException {
    return Files.exists(p) ? Files.readAllBytes(p) : new byte[0];
  }

  private void compareDir(String dir) throws IOException {
    TreeSet<String> names = new TreeSet<>();
    names.addAll(relationFiles(compute.resolve(dir)));
    names.addAll(relationFiles(rebuilt.resolve(dir)));
    for (String name : names) {
      Matcher m = REL_FILE.matcher(name);
      if (!m.matches()) {
        continue;
      }
      String forkName = m.group(2) == null ? "" : m.group(2);
      if (forkName.equals("fsm")) {
        continue;
      }
      boolean unlogged =
          Files.exists(compute.resolve(dir).resolve(m.group(1) + "_init"))
              || Files.exists(rebuilt.resolve(dir).resolve(m.group(1) + "_init"));
      if (unlogged && !forkName.equals("init")) {
        continue;
      }
      ForkNumber fork =
          switch (forkName) {
            case "vm" -> ForkNumber.VISIBILITY_MAP;
            case "init" -> ForkNumber.INIT;
            default -> ForkNumber.MAIN;
          };
      compareFile(dir + "/" + name, fork);
    }
  }

  private void compareFile(String file, ForkNumber fork) throws IOException {
    Path theirsPath = compute.resolve(file);
    Path oursPath = rebuilt.resolve(file);
    boolean theirsExists = Files.exists(theirsPath);
    boolean oursExists = Files.exists(oursPath);
    byte[] theirs = theirsExists ? Files.readAllBytes(theirsPath) : new byte[0];
    byte[] ours = oursExists ? Files.readAllBytes(oursPath) : new byte[0];
    filesCompared++;
    if (theirsExists != oursExists) {
      byte[] only = oursExists ? ours : theirs;
      // only the compute writes without WAL; a fork only the pageserver has is never right
      boolean writtenWithoutWal = theirsExists && only.length > 0;
      for (int blk = 0; writtenWithoutWal && blk < only.length / WalFormat.BLCKSZ; blk++) {
        writtenWithoutWal = withoutWal(page(only, blk), fork);
      }
      if (writtenWithoutWal) {
        oneSidedWithoutWal.add(file + " (file only on the compute)");
      } else {
        mismatches.add(
            new Mismatch(
                file,
                -1,
                PageKind.OTHER,
                (oursExists ? "only in the basebackup (" : "only on the compute (")
                    + only.length / WalFormat.BLCKSZ
                    + " blocks)"));
      }
      return;
    }
    int theirBlocks = theirs.length / WalFormat.BLCKSZ;
    int ourBlocks = ours.length / WalFormat.BLCKSZ;
    int n = Math.max(theirBlocks, ourBlocks);
    for (int blk = 0; blk < n; blk++) {
      byte[] a = page(ours, blk);
      byte[] b = page(theirs, blk);
      if (blk >= theirBlocks || blk >= ourBlocks) {
        byte[] only = blk >= theirBlocks ? a : b;
        if (withoutWal(only, fork)) {
          oneSidedWithoutWal.add(
              file + " block " + blk + (blk >= theirBlocks ? " (basebackup)" : " (compute)"));
          continue;
        }
        mismatches.add(
            new Mismatch(
                file,
                blk,
                PageKind.detect(only, fork),
                blk >= theirBlocks
                    ? "only in the basebackup (compute has " + theirBlocks + " blocks)"
                    : "only on the compute (basebackup has " + ourBlocks + " blocks)"));
        continue;
      }
      PageKind kind = PageKind.detect(b, fork);
      pagesCompared++;
      comparedByKind.merge(kind, 1, Integer::sum);
      if (Arrays.equals(a, b) || PageMasking.equalMasked(a, b, kind, fork)) {
        if (kind == PageKind.SEQUENCE) {
          checkSequence(file, blk, a, b);
        }
        continue;
      }
      if (kind == PageKind.VISIBILITY_MAP
          && facts.vmPagesImagedWithoutBits().contains(file + "#" + blk)
          && bitsSubset(a, b)) {
        vmBitsNotInWal.add(file + " block " + blk);
        continue;
      }
      mismatches.add(new Mismatch(file, blk, kind, describe(a, b, kind, fork)));
    }
  }

  /** A page PostgreSQL writes without WAL: all zeros, or an empty map page ({@code vm_extend}). */
  private boolean withoutWal(byte[] page, ForkNumber fork) {
    if (isZero(page)) {
      zeroTailPages++;
      return true;
    }
    if (fork == ForkNumber.VISIBILITY_MAP
        && PageMasking.pageLsn(page) == 0
        && LittleEndian.u16(page, 12) == 24
        && LittleEndian.u16(page, 14) == WalFormat.BLCKSZ
        && LittleEndian.u16(page, 16) == WalFormat.BLCKSZ
        && isZero(Arrays.copyOfRange(page, 24, WalFormat.BLCKSZ))) {
      emptyVmPagesWithoutWal++;
      return true;
    }
    return false;
  }

  /**
   * Every map bit set on {@code ours} is set on {@code theirs}; the headers but pd_checksum agree.
   */
  private static boolean bitsSubset(byte[] ours, byte[] theirs) {
    for (int i = 0; i < 24; i++) {
      if (i != 8 && i != 9 && ours[i] != theirs[i]) {
        return false;
      }
    }
    for (int i = 24; i < WalFormat.BLCKSZ; i++) {
      if ((ours[i] & ~theirs[i]) != 0) {
        return false;
      }
    }
    return true;
  }

  private void checkSequence(String file, int blk, byte[] ours, byte[] theirs) {
    OptionalLong ourLast = PageMasking.sequenceLastValue(ours);
    OptionalLong theirLast = PageMasking.sequenceLastValue(theirs);
    if (ourLast.isEmpty() || theirLast.isEmpty() || ourLast.getAsLong() == theirLast.getAsLong()) {
      return;
    }
    Sequence seq = facts.sequences().get(file);
    long ahead = ourLast.getAsLong() - theirLast.getAsLong();
    if (seq != null && (seq.cycle() || Long.signum(ahead) == Long.signum(seq.increment()))) {
      sequencesAhead++;
      return;
    }
    mismatches.add(
        new Mismatch(
            file,
            blk,
            PageKind.SEQUENCE,
            "sequence "
                + (seq == null
                    ? "of unknown increment"
                    : "behind (increment " + seq.increment() + ")")
                + ": last_value "
                + ourLast.getAsLong()
                + ", compute's "
                + theirLast.getAsLong()));
  }

  /** LSNs and the first differing byte after masking. */
  private static String describe(byte[] ours, byte[] theirs, PageKind kind, ForkNumber fork) {
    byte[] a = PageMasking.mask(ours, kind, fork);
    byte[] b = PageMasking.mask(theirs, kind, fork);
    int first = Arrays.mismatch(a, b);
    int count = 0;
    for (int i = 0; i < a.length; i++) {
      if (a[i] != b[i]) {
        count++;
      }
    }
    return String.format(
        "basebackup LSN %X/%X, compute LSN %X/%X; %d bytes differ after masking, first at %d"
            + " (basebackup 0x%02x, compute 0x%02x)",
        PageMasking.pageLsn(ours) >>> 32,
        PageMasking.pageLsn(ours) & 0xFFFFFFFFL,
        PageMasking.pageLsn(theirs) >>> 32,
        PageMasking.pageLsn(theirs) & 0xFFFFFFFFL,
        count,
        first,
        a[first] & 0xFF,
        b[first] & 0xFF);
  }

  /** The two sides' raw pages of a mismatch (for saving them next to the report). */
  byte[][] pages(Mismatch m) {
    try {
      Path t = compute.resolve(m.file());
      Path o = rebuilt.resolve(m.file());
      byte[] theirs = Files.exists(t) ? Files.readAllBytes(t) : new byte[0];
      byte[] ours = Files.exists(o) ? Files.readAllBytes(o) : new byte[0];
      int blk = Math.max(m.block(), 0);
      return new byte[][] {page(ours, blk), page(theirs, blk)};
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static List<String> relationFiles(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString())
          .filter(n -> REL_FILE.matcher(n).matches())
          .toList();
    }
  }

  private static boolean isZero(byte[] page) {
    for (byte x : page) {
      if (x != 0) {
        return false;
      }
    }
    return true;
  }

  private static byte[] page(byte[] file, int blk) {
    int from = blk * WalFormat.BLCKSZ;
    return from >= file.length
        ? new byte[WalFormat.BLCKSZ]
        : Arrays.copyOfRange(file, from, from + WalFormat.BLCKSZ);
  }
}
