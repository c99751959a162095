//! Cloudflare sources for cflogs. Filled in by the Cloudflare source issue.
