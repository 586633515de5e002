"""ClickHouse schema and row builders (built in the streams issue)."""
