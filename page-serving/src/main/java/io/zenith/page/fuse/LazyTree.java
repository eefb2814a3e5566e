package io.zenith.page.fuse;

import io.zenith.wal.ForkNumber;
import io.zenith.wal.RelTag;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

/**
 * The namespace of one mount ({@code base/} or {@code global/} of a compute's data directory), held
 * in memory: directories and files, each file an {@link OverlayFile}. It starts from a seed tree
 * (the slim basebackup's files: {@code PG_VERSION}, {@code pg_filenode.map}, … and the database
 * directories) and fills a database directory from the pageserver's relation listing the first time
 * it is used; from then on the tree in memory is the truth for that directory, so creations,
 * unlinks and renames are map operations and nothing the compute removed comes back. A primary's
 * listings are at the pageserver's latest LSN (RemotePages): the same as at its start LSN, since a
 * directory is listed before the compute changes anything in it (to touch a relation it opens its
 * file, which lists the directory first; PostgreSQL lists every database directory as it starts),
 * and never refused by GC (ADR 0021, "GC and lazy computes").
 *
 * <p>Thread-safe: lookups and listings of loaded directories take no lock (concurrent maps, so
 * parallel reads of different files do not queue on the tree); changes of the namespace and a
 * directory's first listing (bounded by the source's timeout) hold the tree's monitor. The kernel
 * serializes a rename against lookups in its directories; file contents have their own locks.
 */
final class LazyTree {
  sealed interface Node permits Dir, File {}

  /** A directory; {@code db} ≥ 0 if its relations come from the pageserver's listing. */
  static final class Dir implements Node {
    final Map<String, Node> children = new ConcurrentSkipListMap<>();
    final int spcOid;
    final long db;
    volatile boolean loaded;

    Dir(int spcOid, long db) {
      this.spcOid = spcOid;
      this.db = db;
      this.loaded = db < 0;
    }
  }

  record File(OverlayFile content) implements Node {}

  private final PageSource source;
  private final Path overlay;
  private final AtomicLong fileIds = new AtomicLong();
  private final Dir root;

  /**
   * @param seed the tree's files at the start (copied into the overlay), or null
   * @param overlay an empty directory for the overlay files
   */
  LazyTree(PageSource source, LazyMount.Root kind, Path seed, Path overlay) throws IOException {
    this.source = source;
    this.overlay = overlay;
    this.root =
        kind == LazyMount.Root.GLOBAL ? new Dir(RelTag.GLOBAL_TABLESPACE, 0) : new Dir(0, -1);
    if (seed != null) {
      seedInto(root, seed, kind == LazyMount.Root.BASE);
    }
  }

  private void seedInto(Dir dir, Path from, boolean databases) throws IOException {
    List<Path> entries;
    try (Stream<Path> s = Files.list(from)) {
      entries = s.toList();
    }
    for (Path p : entries) {
      String name = p.getFileName().toString();
      if (Files.isDirectory(p)) {
        Dir d =
            databases && name.matches("[1-9][0-9]{0,9}") && Long.parseLong(name) <= 0xFFFF_FFFFL
                ? new Dir(RelTag.DEFAULT_TABLESPACE, Long.parseLong(name))
                : new Dir(0, -1);
        dir.children.put(name, d);
        seedInto(d, p, false);
      } else {
        dir.children.put(name, new File(OverlayFile.seeded(source, p, newData())));
      }
    }
  }

  private Path newData() {
    return overlay.resolve(Long.toString(fileIds.incrementAndGet()));
  }

  /** The node at a path ({@code /}, {@code /5/16384}), or FsError NOT_FOUND. */
  Node lookup(String path) throws IOException {
    Node n = root;
    for (String part : parts(path)) {
      if (!(n instanceof Dir d)) {
        throw new FsError(FsError.Kind.NOT_DIR, path);
      }
      // A name that is no relation file cannot come from the listing: no need to ask for it.
      n = (RelFileName.parse(part) == null ? d : load(d)).children.get(part);
      if (n == null) {
        throw new FsError(FsError.Kind.NOT_FOUND, path);
      }
    }
    return n;
  }

  /** The names in a directory. */
  List<String> list(String path) throws IOException {
    if (!(lookup(path) instanceof Dir d)) {
      throw new FsError(FsError.Kind.NOT_DIR, path);
    }
    return new ArrayList<>(load(d).children.keySet());
  }

  /** Creates an empty file (or returns the one there). */
  synchronized OverlayFile create(String path) throws IOException {
    Dir parent = parent(path);
    String name = name(path);
    Node n = parent.children.get(name);
    if (n instanceof Dir) {
      throw new FsError(FsError.Kind.IS_DIR, path);
    }
    if (n instanceof File f) {
      return f.content();
    }
    OverlayFile f = new OverlayFile(source, null, null, 0, 0, newData());
    f.truncate(0); // creates the overlay file
    parent.children.put(name, new File(f));
    return f;
  }

  synchronized void mkdir(String path) throws IOException {
    Dir parent = parent(path);
    if (parent.children.containsKey(name(path))) {
      throw new FsError(FsError.Kind.EXISTS, path);
    }
    parent.children.put(name(path), new Dir(0, -1));
  }

  synchronized void unlink(String path) throws IOException {
    Dir parent = parent(path);
    Node n = parent.children.get(name(path));
    switch (n) {
      case null -> throw new FsError(FsError.Kind.NOT_FOUND, path);
      case Dir d -> throw new FsError(FsError.Kind.IS_DIR, path);
      case File f -> {
        parent.children.remove(name(path));
        f.content().discard();
      }
    }
  }

  synchronized void rmdir(String path) throws IOException {
    Dir parent = parent(path);
    Node n = parent.children.get(name(path));
    switch (n) {
      case null -> throw new FsError(FsError.Kind.NOT_FOUND, path);
      case File f -> throw new FsError(FsError.Kind.NOT_DIR, path);
      case Dir d -> {
        if (!load(d).children.isEmpty()) {
          throw new FsError(FsError.Kind.NOT_EMPTY, path);
        }
        parent.children.remove(name(path));
      }
    }
  }

  /**
   * Renames {@code from} to {@code to}, replacing a file or an empty directory there; the node
   * keeps its remote base, whatever its new name.
   *
   * @param noReplace fail with EXISTS if {@code to} exists ({@code RENAME_NOREPLACE})
   */
  synchronized void rename(String from, String to, boolean noReplace) throws IOException {
    Dir fromParent = parent(from);
    Node n = fromParent.children.get(name(from));
    if (n == null) {
      throw new FsError(FsError.Kind.NOT_FOUND, from);
    }
    Dir toParent = parent(to);
    Node old = toParent.children.get(name(to));
    if (old == n) {
      return;
    }
    if (old != null && noReplace) {
      throw new FsError(FsError.Kind.EXISTS, to);
    }
    if (n instanceof Dir && (to + "/").startsWith(from + "/")) {
      throw new FsError(FsError.Kind.INVALID, to);
    }
    switch (old) {
      case null -> {}
      case File f when n instanceof Dir -> throw new FsError(FsError.Kind.NOT_DIR, to);
      case File f -> f.content().discard();
      case Dir d when n instanceof File -> throw new FsError(FsError.Kind.IS_DIR, to);
      case Dir d -> {
        if (!load(d).children.isEmpty()) {
          throw new FsError(FsError.Kind.NOT_EMPTY, to);
        }
      }
    }
    // the new name first: a lookup without the monitor never finds neither
    toParent.children.put(name(to), n);
    fromParent.children.remove(name(from));
  }

  /** Deletes every overlay file (the mount is going away). */
  synchronized void discardAll() throws IOException {
    discard(root);
  }

  private void discard(Dir d) throws IOException {
    for (Node n : d.children.values()) {
      switch (n) {
        case Dir sub -> discard(sub);
        case File f -> f.content().discard();
      }
    }
    d.children.clear();
  }

  /** Fills a database directory from the pageserver's listing the first time it is used. */
  private Dir load(Dir d) throws IOException {
    if (d.loaded) {
      return d;
    }
    synchronized (this) {
      return loadLocked(d);
    }
  }

  private Dir loadLocked(Dir d) throws IOException {
    if (d.loaded) {
      return d;
    }
    List<PageSource.Fork> forks = source.relations(d.spcOid, (int) d.db);
    // Unlogged relations: no recovery runs on a compute that starts from a basebackup, so nothing
    // resets them to their init fork (PostgreSQL does so only after recovery). As the full
    // basebackup does (BasebackupWriter), the main fork shows the init fork's pages and the
    // relation's other forks (never WAL-logged) are left out.
    Set<Integer> unlogged = new HashSet<>();
    for (PageSource.Fork f : forks) {
      if (f.fork() == ForkNumber.INIT) {
        unlogged.add(f.relNumber());
      }
    }
    List<PageSource.Fork> shown = new ArrayList<>();
    for (PageSource.Fork f : forks) {
      if (!unlogged.contains(f.relNumber())) {
        shown.add(f);
      } else if (f.fork() == ForkNumber.INIT) {
        shown.add(f);
        shown.add(new PageSource.Fork(f.relNumber(), ForkNumber.MAIN, f.blocks()));
      }
    }
    RelTag relOf;
    for (PageSource.Fork f : shown) {
      relOf = new RelTag(d.spcOid, (int) d.db, f.relNumber());
      // the main fork of an unlogged relation reads its init fork's pages
      ForkNumber remoteFork = unlogged.contains(f.relNumber()) ? ForkNumber.INIT : f.fork();
      long segments =
          Math.max(1, (f.blocks() + RelFileName.SEGMENT_BLOCKS - 1) / RelFileName.SEGMENT_BLOCKS);
      for (int seg = 0; seg < segments; seg++) {
        RelFileName name = new RelFileName(f.relNumber(), f.fork(), seg);
        // A seed file of the same name (never expected: the slim basebackup has no relation
        // files) wins, as every overlay file does.
        d.children.putIfAbsent(
            name.fileName(),
            new File(
                new OverlayFile(
                    source,
                    relOf,
                    remoteFork,
                    name.firstBlock(),
                    name.blocksIn(f.blocks()),
                    newData())));
      }
    }
    d.loaded = true;
    return d;
  }

  private Dir parent(String path) throws IOException {
    int slash = path.lastIndexOf('/');
    String parent = slash <= 0 ? "/" : path.substring(0, slash);
    if (!(lookup(parent) instanceof Dir d)) {
      throw new FsError(FsError.Kind.NOT_DIR, path);
    }
    if (name(path).isEmpty()) {
      throw new FsError(FsError.Kind.INVALID, path);
    }
    return load(d);
  }

  private static String name(String path) {
    return path.substring(path.lastIndexOf('/') + 1);
  }

  private static List<String> parts(String path) {
    List<String> out = new ArrayList<>();
    for (String p : path.split("/")) {
      if (!p.isEmpty()) {
        out.add(p);
      }
    }
    return out;
  }
}
