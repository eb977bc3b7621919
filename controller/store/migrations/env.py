"""Alembic environment: the URL comes from the caller (controller.store.db.migrate)."""
from alembic import context

from controller.store.models import Base

config = context.config
connectable = config.attributes.get("connection")


def run() -> None:
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from sqlalchemy import create_engine
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
