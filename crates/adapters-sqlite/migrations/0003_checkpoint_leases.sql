-- cflogs schema, version 3.
--
-- Leases that say who holds a stream: the holder's identity and when its lease ends, by the
-- database's clock (milliseconds since 1970 from SQLite's own `julianday('now')`), never an
-- instance's. NULL: nobody holds it (released, or taken
-- unconditionally). Commits are still fenced by (seq, epoch) and the lease token in the
-- checkpoint document; these columns only decide who may claim the stream.
ALTER TABLE cflogs_checkpoints ADD COLUMN holder TEXT;
ALTER TABLE cflogs_checkpoints ADD COLUMN lease_expires_ms INTEGER;
