-- cflogs schema, version 2.
--
-- Dataset tables are now derived from their dataset schemas, and so are their index names:
-- `{table}_{column}_idx`. SQLite cannot rename an index, so the four indexes migration 0001
-- created on audit_logs are built again under those names. The table itself is unchanged.

DROP INDEX IF EXISTS audit_logs_actor_idx;
DROP INDEX IF EXISTS audit_logs_action_idx;
DROP INDEX IF EXISTS audit_logs_resource_idx;
DROP INDEX IF EXISTS audit_logs_ip_idx;
CREATE INDEX IF NOT EXISTS audit_logs_actor_email_idx ON audit_logs (actor_email);
CREATE INDEX IF NOT EXISTS audit_logs_action_type_idx ON audit_logs (action_type);
CREATE INDEX IF NOT EXISTS audit_logs_resource_id_idx ON audit_logs (resource_id);
CREATE INDEX IF NOT EXISTS audit_logs_ip_address_idx  ON audit_logs (ip_address);
