package io.zenith.wal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import reactor.core.publisher.Flux;
import reactor.core.publisher.SynchronousSink;

/**
 * Reads WAL from segment files laid out like {@code pg_wal}: file names give the order, the first
 * file's long page header gives the segment size.
 *
 * <p>A file shorter than the segment size ends the sequence (it was cut short; reading ends cleanly
 * at its last complete record). Files must be consecutive segments of one timeline.
 *
 * <p>Reading is blocking file I/O: subscribe on a scheduler that may block.
 */
public final class WalSegmentFiles {
  private WalSegmentFiles() {}

  /** Read size for file chunks; large enough to amortize syscalls, small enough to bound memory. */
  public static final int CHUNK_SIZE = 256 * 1024;

  /** An ordered run of segment files and their segment size. */
  public record Sequence(List<Path> files, int segmentSize, WalSegmentName first) {
    public Lsn startLsn() {
      return first.startLsn(segmentSize);
    }

    /** The file holding {@code lsn}, by name, if it is one of this sequence's. */
    public String fileNameFor(Lsn lsn) {
      long seg = lsn.segmentNumber(segmentSize);
      long index = seg - first.segmentNumber();
      if (index >= 0 && index < files.size()) {
        return files.get((int) index).toString();
      }
      return new WalSegmentName(first.timeline(), seg).fileName(segmentSize);
    }
  }

  /**
   * Segment files of a directory in name order (like {@code pg_waldump -p}), including a segment
   * still being written ({@code .partial}, as safekeepers and {@code pg_receivewal} leave them)
   * when no complete file of that segment exists; other files ignored.
   */
  public static List<Path> listSegments(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      List<Path> files = s.filter(Files::isRegularFile).toList();
      java.util.Set<String> complete = new java.util.HashSet<>();
      for (Path p : files) {
        complete.add(p.getFileName().toString());
      }
      return files.stream()
          .filter(
              p -> {
                String n = p.getFileName().toString();
                if (n.endsWith(WalSegmentName.PARTIAL_SUFFIX)) {
                  String base = baseName(n);
                  return WalSegmentName.looksLikeSegmentName(base) && !complete.contains(base);
                }
                return WalSegmentName.looksLikeSegmentName(n);
              })
          .sorted(java.util.Comparator.comparing(p -> baseName(p.getFileName().toString())))
          .toList();
    }
  }

  /** A segment file's name without a {@code .partial} suffix. */
  public static String baseName(String fileName) {
    return fileName.endsWith(WalSegmentName.PARTIAL_SUFFIX)
        ? fileName.substring(0, fileName.length() - WalSegmentName.PARTIAL_SUFFIX.length())
        : fileName;
  }

  /**
   * The consecutive segment files of timeline 1 in {@code dir}, starting with the one holding
   * {@code from}, up to the first missing one.
   */
  public static List<Path> consecutiveFrom(Path dir, Lsn from, int segmentSize) {
    List<Path> files = new ArrayList<>();
    for (long n = from.segmentNumber(segmentSize); ; n++) {
      Path f = dir.resolve(new WalSegmentName(1, n).fileName(segmentSize));
      if (!Files.isRegularFile(f)) {
        return files;
      }
      files.add(f);
    }
  }

  /**
   * Reads the segment size from the first file and checks that the files are consecutive.
   *
   * @throws WalFormatException when the first file is not a WAL segment or the files have gaps
   * @throws IOException when a file cannot be read
   */
  public static Sequence sequence(List<Path> files) throws IOException {
    if (files.isEmpty()) {
      throw new IllegalArgumentException("no WAL segment files given");
    }
    Path firstFile = files.get(0);
    int segmentSize = readSegmentSize(firstFile);
    List<WalSegmentName> names = new ArrayList<>();
    for (Path f : files) {
      String name = baseName(f.getFileName().toString());
      WalSegmentName parsed =
          WalSegmentName.parse(name, segmentSize)
              .orElseThrow(
                  () ->
                      new WalFormatException(
                          WalFormatException.Kind.BAD_SEGMENT_SEQUENCE,
                          Lsn.INVALID,
                          "not a WAL segment file name: " + f));
      names.add(parsed);
    }
    for (int i = 1; i < names.size(); i++) {
      WalSegmentName prev = names.get(i - 1);
      WalSegmentName cur = names.get(i);
      if (!cur.equals(prev.next())) {
        throw new WalFormatException(
            WalFormatException.Kind.BAD_SEGMENT_SEQUENCE,
            prev.next().startLsn(segmentSize),
            "WAL segment files are not consecutive: "
                + files.get(i)
                + " follows "
                + files.get(i - 1)
                + " (expected "
                + prev.next().fileName(segmentSize)
                + ")");
      }
    }
    return new Sequence(List.copyOf(files), segmentSize, names.get(0));
  }

  /**
   * The segment size stated by a segment file's long page header.
   *
   * @throws WalFormatException when the file does not start with a valid long page header
   */
  public static int readSegmentSize(Path file) throws IOException {
    ByteBuffer b =
        ByteBuffer.allocate(WalFormat.LONG_PAGE_HEADER_SIZE).order(ByteOrder.LITTLE_ENDIAN);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      while (b.hasRemaining() && ch.read(b) >= 0) {
        // read until full or EOF
      }
    } catch (NoSuchFileException e) {
      throw new NoSuchFileException(file.toString(), null, "no such file");
    }
    if (b.position() < WalFormat.LONG_PAGE_HEADER_SIZE) {
      throw new WalFormatException(
          WalFormatException.Kind.BAD_PAGE_HEADER,
          Lsn.INVALID,
          file
              + " is not a WAL segment: it is shorter than a page header ("
              + b.position()
              + " bytes)");
    }
    PageHeader h = PageHeader.read(b.array(), 0, WalFormat.LONG_PAGE_HEADER_SIZE);
    if (h.magic() != WalFormat.XLOG_PAGE_MAGIC) {
      throw new WalFormatException(
          WalFormatException.Kind.BAD_PAGE_MAGIC,
          Lsn.INVALID,
          String.format(
              "%s is not a PostgreSQL 15 WAL segment: page magic %04X, expected %04X",
              file, h.magic(), WalFormat.XLOG_PAGE_MAGIC));
    }
    if (!h.isLong()) {
      throw new WalFormatException(
          WalFormatException.Kind.BAD_PAGE_HEADER,
          h.pageAddress(),
          file + " does not start with a segment (long) page header");
    }
    if (!WalFormat.isValidSegmentSize(Integer.toUnsignedLong(h.segmentSize()))) {
      throw new WalFormatException(
          WalFormatException.Kind.BAD_SEGMENT_SIZE,
          h.pageAddress(),
          file
              + ": invalid WAL segment size "
              + Integer.toUnsignedString(h.segmentSize())
              + " in its header (must be a power of two between 1 MiB and 1 GiB)");
    }
    return h.segmentSize();
  }

  /**
   * The bytes of a sequence from {@code from} (inside its first file) on, in chunks of {@link
   * #CHUNK_SIZE}. Stops after a file shorter than the segment size.
   */
  public static Flux<ByteBuffer> read(Sequence seq, Lsn from) {
    long firstSeg = seq.first().segmentNumber();
    long startSeg = from.segmentNumber(seq.segmentSize());
    int skip = (int) (startSeg - firstSeg);
    if (skip < 0 || skip >= seq.files().size()) {
      throw new IllegalArgumentException(
          "LSN "
              + from
              + " is not in the given WAL files ("
              + seq.first().fileName(seq.segmentSize())
              + "...)");
    }
    List<Path> files = seq.files().subList(skip, seq.files().size());
    long offsetInFirst = from.segmentOffset(seq.segmentSize());
    return Flux.fromIterable(files)
        .index()
        .concatMap(
            t -> readFile(t.getT2(), t.getT1() == 0 ? offsetInFirst : 0, seq.segmentSize()), 0)
        .takeWhile(b -> b != END_OF_SEQUENCE);
  }

  /** Marker chunk after a short file: the sequence ends there. */
  private static final ByteBuffer END_OF_SEQUENCE = ByteBuffer.allocate(0);

  /** Generator state after a short read: the next call emits {@link #END_OF_SEQUENCE}. */
  private static final long SHORT_READ = -1;

  private static Flux<ByteBuffer> readFile(Path file, long offset, int segmentSize) {
    return Flux.using(
        () -> FileChannel.open(file, StandardOpenOption.READ),
        ch ->
            Flux.generate(
                () -> offset,
                (Long position, SynchronousSink<ByteBuffer> sink) -> {
                  if (position == SHORT_READ) {
                    sink.next(END_OF_SEQUENCE);
                    sink.complete();
                    return position;
                  }
                  if (position >= segmentSize) {
                    sink.complete();
                    return position;
                  }
                  int want = (int) Math.min(CHUNK_SIZE, segmentSize - position);
                  ByteBuffer buf = ByteBuffer.allocate(want);
                  try {
                    while (buf.hasRemaining() && ch.read(buf, position + buf.position()) >= 0) {
                      // read until the chunk is full or the file ends
                    }
                  } catch (IOException e) {
                    throw new UncheckedIOException(
                        "cannot read " + file + ": " + e.getMessage(), e);
                  }
                  buf.flip();
                  if (buf.limit() == want) {
                    sink.next(buf);
                    return position + want;
                  }
                  // A file cut short: its bytes, then the end of the sequence (one signal per
                  // call).
                  if (buf.hasRemaining()) {
                    sink.next(buf);
                    return SHORT_READ;
                  }
                  sink.next(END_OF_SEQUENCE);
                  sink.complete();
                  return position;
                }),
        ch -> {
          try {
            ch.close();
          } catch (IOException e) {
            // closing a read-only channel loses nothing
          }
        });
  }
}
