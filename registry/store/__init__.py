"""The DuckDB registry: connection, named migrations, views, bulk writes and read models."""
