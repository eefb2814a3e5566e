package io.zenith.gateway.cli;

import io.zenith.ingest.keys.KeySpace;
import io.zenith.layer.Key;
import io.zenith.layer.LayerFile;
import io.zenith.layer.Value;
import io.zenith.wal.ForkNumber;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code zenith layer dump <file>}: a layer file's header and entries. */
@Command(
    name = "layer",
    mixinStandardHelpOptions = true,
    description = "Inspect the pageserver's layer files.",
    subcommands = {LayerCommand.Dump.class})
final class LayerCommand extends CommandGroup {
  @Command(
      name = "dump",
      mixinStandardHelpOptions = true,
      description = {
        "Print a layer file's header, then one line per version: key, LSN, flags, value, and what"
            + " the key is (relation block, fork size, SLRU page, ...).",
        "Every checksum is verified; a damaged file is an error naming the file and the offset."
      })
  static final class Dump implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "<file>", description = "A .layer file.")
    Path file;

    @Option(names = "--header", description = "Print only the header.")
    boolean headerOnly;

    @Override
    public Integer call() throws Exception {
      if (!Files.exists(file)) {
        throw new NoSuchFileException(file.toString());
      }
      PrintWriter out = spec.commandLine().getOut();
      try (LayerFile.Reader r = LayerFile.Reader.open(file)) {
        LayerFile.Header h = r.header();
        out.println("file:      " + file);
        out.println("kind:      " + h.kind().name().toLowerCase(Locale.ROOT));
        out.println("tenant:    " + h.tenant());
        out.println("timeline:  " + h.timeline());
        out.println(
            "keys:      " + h.keys().start() + " .. " + h.keys().end() + " (end exclusive)");
        out.println(
            "lsn:       " + h.lsnFrom() + " .. " + h.lsnTo() + " (versions with from < lsn <= to)");
        out.println("layer id:  " + h.layerId());
        out.println("entries:   " + r.entryCount());
        out.println("size:      " + Files.size(file) + " bytes");
        if (headerOnly) {
          return 0;
        }
        out.println();
        Table t = new Table("KEY", "LSN", "FLAGS", "VALUE", "WHAT");
        for (LayerFile.IndexEntry e : r.readIndex()) {
          Value v = r.readValue(e.offset(), e.length());
          String flags =
              (e.isBase() ? "base" : "")
                  + (e.isTombstone() ? (e.isBase() ? ",tombstone" : "tombstone") : "");
          t.row(e.key().toString(), e.lsn().toString(), flags, describe(v), describe(e.key()));
        }
        t.print(out);
      }
      return 0;
    }
  }

  /** A value in a few words. */
  static String describe(Value v) {
    return switch (v) {
      case Value.Image i -> "image " + i.bytes().length + " B";
      case Value.WalRecord w ->
          "wal record "
              + w.record().length
              + " B from "
              + w.startLsn()
              + (w.willInit() ? " will-init" : "");
      case Value.Patch p -> "patch " + p.offsets().length + " B";
      case Value.Tombstone t -> "tombstone";
    };
  }

  /** What a key stands for, in PostgreSQL's terms (docs/formats/keys.md). */
  static String describe(Key k) {
    return switch (k.field1()) {
      case KeySpace.REL -> {
        String rel =
            "rel "
                + Integer.toUnsignedString(k.field2())
                + "/"
                + Integer.toUnsignedString(k.field3())
                + "/"
                + Integer.toUnsignedString(k.field4())
                + " "
                + fork(k.field5());
        yield k.field6() == KeySpace.SIZE_BLOCK
            ? rel + " size"
            : rel + " blk " + Integer.toUnsignedString(k.field6());
      }
      case KeySpace.SLRU -> {
        String name;
        try {
          name = KeySpace.Slru.of(k.field2()).dir();
        } catch (IllegalArgumentException e) {
          name = "slru " + k.field2();
        }
        String seg = name + " segment " + String.format("%04X", k.field3());
        yield k.field6() == KeySpace.SIZE_BLOCK
            ? seg + " size"
            : seg + " page " + Integer.toUnsignedString(k.field6());
      }
      case KeySpace.DB_DIR ->
          "database "
              + Integer.toUnsignedString(k.field2())
              + "/"
              + Integer.toUnsignedString(k.field3());
      case KeySpace.RELMAP ->
          "relmap "
              + Integer.toUnsignedString(k.field2())
              + "/"
              + Integer.toUnsignedString(k.field3());
      case KeySpace.TWO_PHASE -> "twophase " + String.format("%08X", k.field2());
      case KeySpace.CONTROL -> k.field6() == 0 ? "pg_control" : "checkpoint";
      case KeySpace.COMMIT_TIME -> "commit time";
      default -> "unknown key space " + k.field1();
    };
  }

  private static String fork(int n) {
    try {
      return ForkNumber.ofNumber(n).pgName();
    } catch (RuntimeException e) {
      return "fork " + n;
    }
  }
}
