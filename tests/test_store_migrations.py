"""Schema upgrades: an old store is upgraded on open, once, with its data intact."""

import multiprocessing as mp

import pytest
from sqlalchemy import text

from hangar.errors import UnsupportedFormatError
from hangar.store.engine import create_store_engine
from hangar.store.migrate import HEAD, current_revision, upgrade
from hangar.tracking.sql_store import SqlTrackingStore


def _open(uri, artifacts):
    SqlTrackingStore(uri, artifacts).close()


def test_store_made_by_the_first_migration_is_upgraded(store_uri, tmp_path):
    engine = create_store_engine(store_uri)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
                          "creation_time, last_update_time) VALUES (7, 'old', '/a/7', 'active', 1, 1)"))
        conn.execute(text("INSERT INTO runs (run_id, experiment_id, run_name, status, start_time, lifecycle_stage, "
                          "artifact_uri, user_id) VALUES ('r1', 7, 'old-run', 'FINISHED', 1, 'active', '/a/7/r1', 'me')"))
        conn.execute(text("INSERT INTO params (run_id, key, value) VALUES ('r1', 'lr', '0.1')"))
    engine.dispose()
    # several processes open the old store at once: exactly one upgrades it
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_open, args=(store_uri, str(tmp_path / "art"))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = SqlTrackingStore(store_uri, str(tmp_path / "art"))
    assert current_revision(store.engine) == HEAD
    run = store.get_run("r1")
    assert run.info.run_name == "old-run" and run.data.params == {"lr": "0.1"}
    lm = store.create_logged_model("7", "new-feature")  # a table from the second migration
    assert lm.experiment_id == "7"
    store.close()


def test_store_from_a_newer_hangar_is_refused(store_uri, tmp_path):
    SqlTrackingStore(store_uri, str(tmp_path)).close()
    engine = create_store_engine(store_uri)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(UnsupportedFormatError, match="newer Hangar"):
        SqlTrackingStore(store_uri, str(tmp_path))


def test_migrations_match_the_schema_module(store_uri, tmp_path):
    """schema.py (what the code queries) and the migrations (what creates tables) agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from hangar.store.schema import metadata

    store = SqlTrackingStore(store_uri, str(tmp_path))
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    store.close()
    assert diffs == []
