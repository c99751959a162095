-- cflogs schema, version 2.
--
-- Dataset tables are now derived from their dataset schemas, and so are their index names:
-- `{table}_{column}_idx`. The four indexes migration 0001 created on audit_logs get those names,
-- so that preparing the audit_logs table finds them instead of building them a second time.
-- The table itself is unchanged.

ALTER INDEX IF EXISTS audit_logs_actor_idx    RENAME TO audit_logs_actor_email_idx;
ALTER INDEX IF EXISTS audit_logs_action_idx   RENAME TO audit_logs_action_type_idx;
ALTER INDEX IF EXISTS audit_logs_resource_idx RENAME TO audit_logs_resource_id_idx;
ALTER INDEX IF EXISTS audit_logs_ip_idx       RENAME TO audit_logs_ip_address_idx;
