"""Alembic environment of the case store.

Normally driven by :func:`gridsentinel.cases.store.upgrade`, which passes an open connection in
``config.attributes["connection"]``. The ``alembic`` command line works too, given a URL and an ini
file with ``script_location = gridsentinel/cases/migrations``:
``alembic -c that.ini -x url=sqlite:///cases.db upgrade head``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from gridsentinel.cases.store import create_engine, metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_url(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("case store migrations: pass -x url=<database URL> or set sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True,
                          dialect_opts={"paramstyle": "named"})
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_url(url))


# Only inside an Alembic run: this module is also imported by pytest's doctest collection.
if hasattr(context, "config"):
    main()
