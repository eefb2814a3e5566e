package io.zenith.wal.remote;

/** One object found by a listing: its key and size in bytes. Immutable. */
public record RemoteObject(RemoteKey key, long size) {}
