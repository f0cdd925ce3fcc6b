"""The schema: migrating again changes nothing, the revision is the newest migration's, and
an insert that ignores a duplicate key does so on each engine."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from mailbot.db import store
from mailbot.db.models import META


def test_migrating_twice_is_harmless_and_gives_the_newest_revision(
    committing_engine: Engine,
) -> None:
    with committing_engine.begin() as connection:
        connection.execute(sa.insert(META).values(key="clock", value="wall"))
    revision = store.schema_revision(committing_engine)
    store.migrate(committing_engine)
    assert store.schema_revision(committing_engine) == revision
    config = AlembicConfig()
    config.set_main_option("script_location", str(store.MIGRATIONS))
    assert revision == ScriptDirectory.from_config(config).get_current_head()
    with committing_engine.connect() as connection:
        clock = sa.select(META.c.value).where(META.c.key == "clock")
        assert connection.execute(clock).scalar_one() == "wall"


def test_an_insert_ignoring_a_duplicate_key_writes_the_first_row_only(
    connection: Connection,
) -> None:
    insert = store.insert_ignoring(connection, META, "key")
    connection.execute(insert.values(key="clock", value="wall"))
    connection.execute(insert.values(key="clock", value="fixed"))
    clock = sa.select(META.c.key, META.c.value).where(META.c.key == "clock")
    assert connection.execute(clock).all() == [("clock", "wall")]
