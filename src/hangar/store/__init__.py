"""The metadata store: one SQL schema, SQLite by default, PostgreSQL for teams."""
