"""Alembic environment: one engine from iam.migrate, all tables from every package."""

from __future__ import annotations

from alembic import context

from iam.migrate import metadata

config = context.config
target_metadata = metadata()


def run() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from sqlalchemy import create_engine

        engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///var/iam.db")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # several nodes run `iam db upgrade` as they start (systemd ExecStartPre): one
                # migrates, the others wait here and then find nothing left to do
                from sqlalchemy import text

                connection.execute(text("SELECT pg_advisory_xact_lock(7310021)"))
            context.run_migrations()
        connection.commit()


run()
