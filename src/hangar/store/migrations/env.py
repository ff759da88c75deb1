"""Alembic environment: Hangar passes the connection in; nothing is read from an ini file."""

from alembic import context

from hangar.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
