"""Getting events out of The Eye: encoders for NDJSON, CSV and Parquet (`formats`), shared by
the streaming HTTP exports and the incremental export to files (`incremental`)."""
