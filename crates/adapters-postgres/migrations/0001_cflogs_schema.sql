-- cflogs schema, version 1.
--
-- audit_logs has the columns of the seed (001) plus `stream`, the cflogs stream that wrote the
-- row. Its primary key starts with "timestamp" (a TimescaleDB hypertable needs the partitioning
-- column in every unique index) and holds the account and the event id, so several accounts
-- share one table, and the stream, so a write is idempotent per (stream, event id) as the
-- AnalyticsSink contract requires. An event has one time and one account, so within a stream
-- the key is the event id.
--
-- Identifier columns use the "C" collation: byte order, so comparisons in the key and the
-- indexes are memcmp instead of the locale's strcoll (equality is the same either way).

CREATE TABLE audit_logs (
    event_id       TEXT COLLATE "C" NOT NULL,
    "timestamp"    TIMESTAMPTZ NOT NULL,
    -- '' when the event carries no account (never the case for the Cloudflare sources).
    account_id     TEXT COLLATE "C" NOT NULL DEFAULT '',
    actor_email    TEXT COLLATE "C",
    actor_type     TEXT COLLATE "C",
    action_type    TEXT COLLATE "C",
    action_result  TEXT COLLATE "C",
    resource_type  TEXT COLLATE "C",
    resource_id    TEXT COLLATE "C",
    -- NULL when the source sent something that is not an IP address (the text stays in raw_event).
    ip_address     INET,
    metadata       JSONB,
    raw_event      JSONB       NOT NULL,
    ingestion_time TIMESTAMPTZ NOT NULL DEFAULT now(),
    stream         TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY ("timestamp", account_id, event_id, stream)
);

-- The questions users ask: what did this person do, who did this action, who touched this
-- resource, what came from this address. One B-tree per column, without the time: the values
-- repeat (an actor has thousands of events), so B-tree deduplication keeps each value's rows in
-- one posting list, and an insert touches a page that is already cached instead of splitting
-- pages keyed by time. Matches are read by bitmap and sorted by time, or combined with a time
-- range on the primary key. Time ranges use the primary key.
CREATE INDEX audit_logs_actor_idx    ON audit_logs (actor_email);
CREATE INDEX audit_logs_action_idx   ON audit_logs (action_type);
CREATE INDEX audit_logs_resource_idx ON audit_logs (resource_id);
CREATE INDEX audit_logs_ip_idx       ON audit_logs (ip_address);

-- Events of datasets without mapped columns (http_requests, …): the raw event only.
CREATE TABLE raw_events (
    dataset        TEXT COLLATE "C" NOT NULL,
    stream         TEXT COLLATE "C" NOT NULL,
    event_id       TEXT COLLATE "C" NOT NULL,
    "timestamp"    TIMESTAMPTZ NOT NULL,
    raw_event      JSONB       NOT NULL,
    ingestion_time TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY ("timestamp", stream, event_id)
);
CREATE INDEX raw_events_dataset_idx ON raw_events (dataset, "timestamp" DESC);

-- Records the source could not map, with their exact bytes.
CREATE TABLE quarantine (
    stream        TEXT COLLATE "C" NOT NULL,
    quarantine_id TEXT COLLATE "C" NOT NULL,
    dataset       TEXT COLLATE "C" NOT NULL,
    raw           BYTEA       NOT NULL,
    reason        TEXT        NOT NULL,
    occurred_at   TIMESTAMPTZ,
    ingested_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, quarantine_id)
);
CREATE INDEX quarantine_ingested_idx ON quarantine (ingested_at DESC);

-- One row per stream: the whole checkpoint as its JSON document (timestamps to the nanosecond,
-- the pending manifest), with seq and epoch as columns for the compare-and-set.
CREATE TABLE cflogs_checkpoints (
    stream     TEXT COLLATE "C" PRIMARY KEY,
    seq        BIGINT      NOT NULL CHECK (seq >= 0),
    epoch      BIGINT      NOT NULL CHECK (epoch >= 0),
    -- For people reading the table; rounded to the microsecond. The exact value is in checkpoint.
    watermark  TIMESTAMPTZ NOT NULL,
    checkpoint JSONB       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Fallbacks of the bulk insert when PostgreSQL refuses a value the adapter let through: the
-- document is kept as a JSON string, an address that is not one becomes NULL. Only used when
-- the fast path fails, because each call opens a subtransaction.
CREATE FUNCTION cflogs_try_jsonb(doc TEXT) RETURNS JSONB
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN doc::jsonb;
EXCEPTION WHEN data_exception THEN
    RETURN to_jsonb(doc);
END
$$;

CREATE FUNCTION cflogs_try_inet(addr TEXT) RETURNS INET
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN addr::inet;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;
