package io.zenith.replication.pgwire;

/**
 * SQLSTATE codes this module sends or reacts to (PostgreSQL's {@code errcodes.txt}). Codes are
 * strings of five characters; compare with {@code equals}.
 */
public final class SqlState {
  private SqlState() {}

  /** 08P01 protocol_violation. */
  public static final String PROTOCOL_VIOLATION = "08P01";

  /** 0A000 feature_not_supported. */
  public static final String FEATURE_NOT_SUPPORTED = "0A000";

  /** 22023 invalid_parameter_value (e.g. a startup option whose value does not parse). */
  public static final String INVALID_PARAMETER_VALUE = "22023";

  /** 3D000 invalid_catalog_name (PostgreSQL: a database that does not exist). */
  public static final String INVALID_CATALOG_NAME = "3D000";

  /** 28000 invalid_authorization_specification. */
  public static final String INVALID_AUTHORIZATION_SPECIFICATION = "28000";

  /** 28P01 invalid_password. */
  public static final String INVALID_PASSWORD = "28P01";

  /** 42601 syntax_error. */
  public static final String SYNTAX_ERROR = "42601";

  /** 42602 invalid_name (e.g. a replication slot name with characters PostgreSQL refuses). */
  public static final String INVALID_NAME = "42602";

  /** 42622 name_too_long. */
  public static final String NAME_TOO_LONG = "42622";

  /** 42704 undefined_object (e.g. a replication slot that does not exist). */
  public static final String UNDEFINED_OBJECT = "42704";

  /** 42710 duplicate_object (e.g. a replication slot that already exists). */
  public static final String DUPLICATE_OBJECT = "42710";

  /** 57P01 admin_shutdown. */
  public static final String ADMIN_SHUTDOWN = "57P01";

  /** 57P02 crash_shutdown. */
  public static final String CRASH_SHUTDOWN = "57P02";

  /** 57014 query_canceled. */
  public static final String QUERY_CANCELED = "57014";

  /** 58P01 undefined_file (e.g. requested WAL segment has already been removed). */
  public static final String UNDEFINED_FILE = "58P01";

  /** XX000 internal_error. */
  public static final String INTERNAL_ERROR = "XX000";
}
