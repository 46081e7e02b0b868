"""Alembic environment: runs on the connection that `the_eye.store.migrate` hands it."""

from alembic import context

from the_eye.store.tables import metadata

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
