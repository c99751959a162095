//! S3/Parquet archive for cflogs. Filled in by the archive issue.
