"""Database: SQLAlchemy tables, engine and session setup, Alembic migrations."""
