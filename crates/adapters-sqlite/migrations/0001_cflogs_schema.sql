-- cflogs schema for SQLite, version 1: the same tables and keys as the PostgreSQL adapter.
--
-- Times are TEXT in RFC 3339, UTC, with nine fractional digits ('2026-11-25T10:00:00.123456789Z'):
-- they sort as time, keep the nanoseconds, and SQLite's date functions read them.

CREATE TABLE audit_logs (
    event_id       TEXT NOT NULL,
    "timestamp"    TEXT NOT NULL,
    -- '' when the event carries no account.
    account_id     TEXT NOT NULL DEFAULT '',
    actor_email    TEXT,
    actor_type     TEXT,
    action_type    TEXT,
    action_result  TEXT,
    resource_type  TEXT,
    resource_id    TEXT,
    -- The address in canonical form, NULL when the source sent something that is not one.
    ip_address     TEXT,
    -- JSON text, as mapped.
    metadata       TEXT,
    -- The event's exact bytes: TEXT when they are UTF-8 (always, for JSON), a BLOB otherwise.
    raw_event      TEXT NOT NULL,
    ingestion_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    stream         TEXT NOT NULL,
    PRIMARY KEY ("timestamp", account_id, event_id, stream)
);

-- The questions users ask: by actor, action, resource, address. One index per column, as in
-- PostgreSQL: rows of one value come out in insertion order (rowid), and are sorted by time or
-- combined with a time range on the primary key.
CREATE INDEX audit_logs_actor_idx    ON audit_logs (actor_email);
CREATE INDEX audit_logs_action_idx   ON audit_logs (action_type);
CREATE INDEX audit_logs_resource_idx ON audit_logs (resource_id);
CREATE INDEX audit_logs_ip_idx       ON audit_logs (ip_address);

-- Events of datasets without mapped columns (http_requests, …): the raw event only.
CREATE TABLE raw_events (
    dataset        TEXT NOT NULL,
    stream         TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    "timestamp"    TEXT NOT NULL,
    raw_event      TEXT NOT NULL,
    ingestion_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY ("timestamp", stream, event_id)
);
CREATE INDEX raw_events_dataset_idx ON raw_events (dataset, "timestamp");

-- Records the source could not map, with their exact bytes.
CREATE TABLE quarantine (
    stream        TEXT NOT NULL,
    quarantine_id TEXT NOT NULL,
    dataset       TEXT NOT NULL,
    raw           BLOB NOT NULL,
    reason        TEXT NOT NULL,
    occurred_at   TEXT,
    ingested_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (stream, quarantine_id)
);

-- One row per stream: the whole checkpoint as its JSON document, seq and epoch as columns for
-- the compare-and-set.
CREATE TABLE cflogs_checkpoints (
    stream     TEXT    PRIMARY KEY,
    seq        INTEGER NOT NULL CHECK (seq >= 0),
    epoch      INTEGER NOT NULL CHECK (epoch >= 0),
    watermark  TEXT    NOT NULL,
    checkpoint TEXT    NOT NULL,
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
