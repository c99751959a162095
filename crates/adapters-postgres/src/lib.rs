//! PostgreSQL adapters for cflogs. Filled in by the PostgreSQL issue.
