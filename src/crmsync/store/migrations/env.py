"""Alembic environment for crmsync's store.

Run programmatically by ``Store.upgrade()``, which passes an open connection in
``config.attributes["connection"]``; no alembic.ini is needed. For the alembic command line, set
``sqlalchemy.url`` (``alembic -x url=sqlite:///crmsync.db upgrade head`` with
``script_location`` pointing here).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from crmsync.store.engine import create_store_engine
from crmsync.store.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass a connection (Store.upgrade) or -x url=...")
    engine = create_store_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; use Store.upgrade()")
run_migrations_online()
