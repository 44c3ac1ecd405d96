"""State store: tables, repositories and Alembic migrations (SQLite or PostgreSQL)."""
