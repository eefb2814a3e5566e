package io.zenith.ingest.wal.records;

import io.zenith.ingest.wal.DecodedRecord;
import io.zenith.ingest.wal.RecordDecoder;
import io.zenith.wal.Lsn;
import io.zenith.wal.WalFormatException;
import io.zenith.wal.WalRecord;

/**
 * A WAL record decoded once: its parts ({@link DecodedRecord}) and its typed content ({@link
 * PgRecord}) travel together from the decode stage to the ingest stage, so that the record is
 * parsed exactly once. Immutable (views into the raw record, like {@link DecodedRecord}).
 *
 * @param decoded the record split into header, block references and main data
 * @param typed its content as the record type's redo reads it
 */
public record TypedRecord(DecodedRecord decoded, PgRecord typed) {

  /**
   * Splits {@code raw} ({@link RecordDecoder}) and parses its content ({@link PgRecords}).
   *
   * @throws WalFormatException of kind {@code BAD_RECORD_CONTENT} when either finds it malformed
   */
  public static TypedRecord decode(WalRecord raw) {
    DecodedRecord d = RecordDecoder.decode(raw);
    return new TypedRecord(d, PgRecords.parse(d));
  }

  public Lsn lsn() {
    return decoded.lsn();
  }

  public Lsn end() {
    return decoded.end();
  }

  public int totalLength() {
    return decoded.totalLength();
  }
}
