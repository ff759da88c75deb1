"""`hangar store copy / verify / backup`: a whole store moves between databases and is proved
equal; a live SQLite store is backed up consistently while another process writes to it."""

import json
import multiprocessing as mp
import sqlite3
import time

import pytest
from sqlalchemy import text

from hangar.cli.main import main
from hangar.errors import AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError
from hangar.store.backup import backup_sqlite
from hangar.store.copy import StoreCopyError, StoreVerificationError, copy_store, rewrite_uri, verify_store
from hangar.store.engine import create_store_engine
from hangar.store.migrate import HEAD, ensure_schema, upgrade
from hangar.tracking.entities import Dataset, DatasetInput, Metric
from hangar.tracking.sql_store import SqlTrackingStore

# -- a store with a bit of everything, written through the public tracking API ------------------


@pytest.fixture
def source(tmp_path):
    uri = f"sqlite:///{tmp_path / 'src' / 'hangar.db'}"
    root = str(tmp_path / "artifacts")
    s = SqlTrackingStore(uri, root)
    exp = s.create_experiment("fraud", tags={"team": "risk", "note": "ünïcödé ✓"})
    other = s.create_experiment("scratch")
    run_ids = []
    for i in range(6):
        r = s.create_run(exp, run_name=f"trial-{i}", tags={"i": str(i)}, user_id="ada")
        s.log_batch(r.info.run_id, params={"lr": str(0.1 * (i + 1)), "depth": str(i)},
                    metrics=[Metric("loss", 1 / (step + i + 3), 1_700_000_000_000 + step, step) for step in range(50)]
                    + [Metric("acc", 0.1 + 0.2, 1_700_000_000_000, 0), Metric("tiny", 1e-300, 1, 0)])
        s.update_run_info(r.info.run_id, status="FINISHED", end_time=1_700_000_100_000)
        run_ids.append(r.info.run_id)
    child = s.create_run(exp, run_name="child", parent_run_id=run_ids[0])
    s.set_tag(child.info.run_id, "empty", "")
    run_ids.append(child.info.run_id)
    s.log_inputs(run_ids[0], [DatasetInput(Dataset("questions", "d1g35t", "local", "/data/q.parquet", '{"x": 1}'),
                                           "training")])
    s.delete_run(run_ids[5])
    s.create_run(other, run_name="in-scratch")
    lm = s.create_logged_model(exp, "model", source_run_id=run_ids[1], params={"k": "v"}, tags={"flavor": "pyfunc"})
    s.finalize_logged_model(lm.model_id, "READY", ["python_function"])
    s.log_logged_model_metrics(lm.model_id, [Metric("f1", 0.875, 5, 1)], run_id=run_ids[1])
    s.close()
    return {"uri": uri, "root": root, "experiments": ["0", exp, other], "runs": run_ids, "model": lm.model_id}


def _snapshot(uri: str, ids: dict) -> dict:
    """What a user of the store sees: experiments, runs (search and get), histories, logged models."""
    s = SqlTrackingStore(uri, "/unused")
    try:
        exps, _ = s.search_experiments(view="all")
        runs, _ = s.search_runs(ids["experiments"], view="all", max_results=1000)
        return {
            "experiments": sorted(exps, key=lambda e: e.experiment_id),
            "runs": runs,
            "got": [s.get_run(r) for r in ids["runs"]],
            "history": [s.get_metric_history(r, "loss") for r in ids["runs"]],
            "model": s.get_logged_model(ids["model"]),
            "models": s.search_logged_models(ids["experiments"])[0],
        }
    finally:
        s.close()


def _digests(uri: str) -> dict:
    """Every table's row count and content digest (a store compared with itself)."""
    return {t.table: (t.rows, t.digest) for t in verify_store(uri, uri).tables}


# -- copy -----------------------------------------------------------------------------------------


def test_copy_sqlite_to_postgresql_and_back(source, pg_uri, tmp_path):
    calls = []
    report = copy_store(source["uri"], pg_uri, progress=lambda *a: calls.append(a))
    assert report.verified and report.schema_revision == HEAD and not report.source_upgraded
    counts = {t.table: t.rows for t in report.tables}
    assert counts["experiments"] == 3 and counts["runs"] == 8 and counts["metrics"] == 6 * 52
    assert counts["logged_models"] == 1 and counts["inputs"] == 1 and report.rows == sum(counts.values())
    assert all(t.verified and t.rows == t.target_rows for t in report.tables)
    assert {("copy", "metrics", 312, 312), ("verify", "metrics", 312, 312)} <= set(calls)

    back = f"sqlite:///{tmp_path / 'back.db'}"
    assert copy_store(pg_uri, back).verified

    want = _snapshot(source["uri"], source)
    assert _snapshot(pg_uri, source) == want
    assert _snapshot(back, source) == want
    assert want["got"][0].inputs[0].dataset.name == "questions"  # the comparison compared something
    assert want["model"].metrics == {"f1": 0.875} and want["got"][1].data.metrics["acc"] == 0.1 + 0.2

    # the PostgreSQL sequences moved past the copied ids: new rows get new ids
    s = SqlTrackingStore(pg_uri, str(tmp_path / "artifacts"))
    try:
        new_exp = s.create_experiment("after-the-move")
        assert int(new_exp) == 3
        run = s.create_run(new_exp)
        s.log_metric(run.info.run_id, "loss", 0.5)
        assert [m.value for m in s.get_metric_history(run.info.run_id, "loss")] == [0.5]
        with s.engine.connect() as conn:
            assert conn.execute(text("SELECT MAX(id) FROM metrics")).scalar() == 6 * 52 + 1
    finally:
        s.close()


def test_registry_copies_with_aliases_history_and_an_intact_audit_chain(tmp_path, pg_uri, monkeypatch):
    import sys
    from pathlib import Path

    import hangar.pyfunc as hp
    from hangar.catalog.client import Client

    sys.path.insert(0, str(Path(__file__).parent / "assets"))
    from hinted_model import HintedLen

    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    src_uri, root = f"sqlite:///{tmp_path / 'src.db'}", str(tmp_path / "artifacts")
    package = hp.save_model(tmp_path / "pkg", HintedLen(), input_example=["abc"])
    c = Client(src_uri, root)
    c.register_model(package, "assistant")
    c.register_model(package, "assistant", tags={"stage": "qa"})
    c.set_alias("assistant", "champion", 1)
    c.set_alias("assistant", "champion", 2)
    assert c.verify_audit().ok
    c.store.close()

    report = copy_store(src_uri, pg_uri, artifact_root_map={root: "s3://bucket/hangar"})
    rows = {t.table: t.rows for t in report.tables}
    assert report.verified and rows["model_versions"] == 2 and rows["alias_history"] == 2 and rows["audit_log"] > 0

    t = Client(pg_uri, "s3://bucket/hangar")
    try:
        assert t.get_version_by_alias("assistant", "champion").version == 2
        assert [h.version for h in t.get_alias_history("assistant", "champion")] in ([2, 1], [1, 2])
        assert t.get_model_version("assistant", 2).tags == {"stage": "qa"}
        assert t.get_model_version("assistant", 1).storage_location.startswith("s3://bucket/hangar/")
        before = t.verify_audit()
        assert before.ok and before.records == rows["audit_log"]
        t.set_alias("assistant", "champion", 1)  # new alias_history and audit_log rows: the sequences moved on
        after = t.verify_audit()
        assert after.ok and after.records == before.records + 1 and after.head_seq == before.head_seq + 1
    finally:
        t.store.close()


def test_old_source_is_upgraded_first_and_the_output_says_so(tmp_path, capsys):
    old = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_store_engine(old)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO experiments VALUES (7, 'old', '/a/7', 'active', 1, 1)"))
    engine.dispose()
    code, out, _ = _cli(capsys, "store", "copy", "--from", old, "--to", f"sqlite:///{tmp_path / 'new.db'}")
    assert code == 0
    assert "schema 0001, upgraded in place" in out and "every table verified" in out and "✓" in out
    assert "the files stay where they are" in out
    assert SqlTrackingStore(f"sqlite:///{tmp_path / 'new.db'}", "/x").get_experiment("7").name == "old"


@pytest.mark.parametrize("opened_only", [False, True], ids=["with-data", "opened-once"])
def test_a_non_empty_target_is_refused_and_left_unchanged(source, store_uri, tmp_path, opened_only):
    target = SqlTrackingStore(store_uri, str(tmp_path / "t-art"))
    if not opened_only:
        run = target.create_run(target.create_experiment("mine"))
        target.log_metric(run.info.run_id, "x", 1.0)
    target.close()
    before = _digests(store_uri)
    with pytest.raises(ConflictError, match="is not empty .*nothing was changed"):
        copy_store(source["uri"], store_uri)
    assert _digests(store_uri) == before


def test_a_failed_copy_leaves_the_target_empty(source, pg_uri):
    # the target refuses one metric value half-way through the copy (a real constraint, not a patch)
    engine = create_store_engine(pg_uri)
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE metrics ADD CONSTRAINT no_big_steps CHECK (step < 40)"))
    engine.dispose()
    with pytest.raises(StoreCopyError, match="Copying table metrics failed.*holds no rows"):
        copy_store(source["uri"], pg_uri, batch_rows=7)
    assert all(rows == 0 for rows, _ in _digests(pg_uri).values())


def test_a_mismatch_found_during_the_copy_rolls_it_back(source, tmp_path):
    target = f"sqlite:///{tmp_path / 'target.db'}"
    engine = create_store_engine(target)
    ensure_schema(engine)
    with engine.begin() as conn:  # a target that silently alters what it is given
        conn.execute(text("CREATE TRIGGER garble AFTER INSERT ON params BEGIN "
                          "UPDATE params SET value = value || '!' WHERE run_id = NEW.run_id AND key = NEW.key; END"))
    engine.dispose()
    with pytest.raises(StoreVerificationError, match="Verification failed for params") as err:
        copy_store(source["uri"], target)
    assert [t.table for t in err.value.report.tables if not t.verified] == ["params"]
    assert all(rows == 0 for rows, _ in _digests(target).values())


def test_verify_detects_a_tampered_row(source, tmp_path, capsys):
    target = f"sqlite:///{tmp_path / 'target.db'}"
    copy_store(source["uri"], target)
    assert verify_store(source["uri"], target).verified
    engine = create_store_engine(target)
    with engine.begin() as conn:
        conn.execute(text("UPDATE metrics SET value = value + 1e-12 WHERE id = 17"))
    engine.dispose()
    report = verify_store(source["uri"], target)
    assert not report.verified and report.mismatched == ["metrics"]
    bad = next(t for t in report.tables if t.table == "metrics")
    assert bad.rows == bad.target_rows and bad.digest != bad.target_digest  # same count, other content
    code, out, err = _cli(capsys, "store", "verify", "--from", source["uri"], "--to", target, "--json")
    assert code == 1 and "Error [STORE_VERIFICATION_FAILED]" in err and "metrics" in err
    assert json.loads(out)["verified"] is False


def test_artifact_root_map_rewrites_uris(source, tmp_path):
    target = f"sqlite:///{tmp_path / 'target.db'}"
    mapping = {source["root"]: "s3://bucket/hangar/"}
    report = copy_store(source["uri"], target, artifact_root_map=mapping)
    assert report.verified and report.artifact_uris_rewritten == 3 + 8 + 1  # experiments, runs, logged model
    snap = _snapshot(target, source)
    assert [e.artifact_location for e in snap["experiments"]] == [f"s3://bucket/hangar/{i}" for i in (0, 1, 2)]
    assert all(r.info.artifact_uri == f"s3://bucket/hangar/1/{r.info.run_id}/artifacts" for r in snap["got"])
    assert snap["model"].artifact_location.startswith("s3://bucket/hangar/1/models/")
    assert verify_store(source["uri"], target, artifact_root_map=mapping).verified
    assert set(verify_store(source["uri"], target).mismatched) == {"experiments", "runs", "logged_models"}
    # a prefix matches whole path segments only
    assert rewrite_uri("/data/artifacts/1", [("/data/art", "s3://b")]) == "/data/artifacts/1"
    assert rewrite_uri("/data/art/1", [("/data/art", "s3://b")]) == "s3://b/1"


def test_copy_refuses_bad_sources(tmp_path):
    missing = tmp_path / "nope" / "hangar.db"
    with pytest.raises(NotFoundError, match="does not exist"):
        copy_store(f"sqlite:///{missing}", f"sqlite:///{tmp_path / 't.db'}")
    assert not missing.parent.exists()  # nothing was created in its place
    same = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(InvalidArgumentError, match="same store"):
        copy_store(same, f"sqlite:///{tmp_path}/./s.db")
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(InvalidArgumentError, match="not a Hangar store"):
        copy_store(f"sqlite:///{tmp_path / 'other.db'}", f"sqlite:///{tmp_path / 't.db'}")


# -- backup ---------------------------------------------------------------------------------------


def _writer(uri, root, run_id, stop, written):
    """Logs metrics in a loop (50 per transaction, steps counting up) until told to stop."""
    s = SqlTrackingStore(uri, root)
    step = 0
    while not stop.is_set():
        s.log_batch(run_id, metrics=[Metric("m", float(step + j), step + j, step + j) for j in range(50)])
        step += 50
        written.value = step
    s.close()


def test_backup_while_another_process_writes(source, tmp_path):
    s = SqlTrackingStore(source["uri"], source["root"])
    run_id = s.create_run(source["experiments"][1]).info.run_id
    s.close()
    ctx = mp.get_context("spawn")
    stop, written = ctx.Event(), ctx.Value("q", 0)
    proc = ctx.Process(target=_writer, args=(source["uri"], source["root"], run_id, stop, written))
    proc.start()
    try:
        deadline = time.monotonic() + 60
        while written.value < 500:
            assert proc.is_alive() and time.monotonic() < deadline, "the writer did not start writing"
            time.sleep(0.02)
        reports = []
        for i in range(3):
            reports.append(backup_sqlite(source["uri"], tmp_path / f"backup-{i}.db"))
            time.sleep(0.05)
        during = written.value
        time.sleep(0.2)
    finally:
        stop.set()
        proc.join(60)
    assert proc.exitcode == 0
    assert written.value > during
    for rep in reports:
        assert rep.integrity == "ok" and rep.schema_revision == HEAD and rep.bytes > 0
        conn = sqlite3.connect(rep.path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        n = conn.execute("SELECT COUNT(*) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()[0]
        conn.close()
        assert n % 50 == 0 and rep.tables["metrics"] == 312 + n  # whole transactions only
        b = SqlTrackingStore(f"sqlite:///{rep.path}", "/x")
        try:  # a consistent snapshot: the latest metric agrees with the history
            assert b.get_run(run_id).data.metrics.get("m", -1.0) == n - 1
            assert len(b.get_metric_history(run_id, "m")) == n
            assert b.get_run(source["runs"][0]).data.params["lr"] == "0.1"
        finally:
            b.close()
    counts = [r.tables["metrics"] for r in reports]
    assert counts[0] < counts[1] < counts[2]  # each backup was taken while the writer went on writing


def test_backup_refusals(source, tmp_path):
    with pytest.raises(InvalidArgumentError, match="pg_dump"):
        backup_sqlite("postgresql://postgres@127.0.0.1:5432/test", tmp_path / "b.db")
    with pytest.raises(NotFoundError):
        backup_sqlite(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "b.db")
    (tmp_path / "exists.db").write_text("mine")
    with pytest.raises(AlreadyExistsError, match="--force"):
        backup_sqlite(source["uri"], tmp_path / "exists.db")
    assert (tmp_path / "exists.db").read_text() == "mine"
    (tmp_path / "exists.db-wal").write_bytes(b"stale")  # left by the file being overwritten
    assert backup_sqlite(source["uri"], f"sqlite:///{tmp_path / 'exists.db'}", overwrite=True).integrity == "ok"
    assert not (tmp_path / "exists.db-wal").exists()
    assert SqlTrackingStore(f"sqlite:///{tmp_path / 'exists.db'}", "/x").get_run(source["runs"][0]).info.run_name == "trial-0"
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


# -- the command line -----------------------------------------------------------------------------


def _cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_.value.code or 0, out.out, out.err


def test_cli_copy_verify_backup(source, tmp_path, capsys, monkeypatch):
    target = f"sqlite:///{tmp_path / 'target.db'}"
    code, out, err = _cli(capsys, "store", "copy", "--from", source["uri"], "--to", target, "--json",
                          "--artifact-root-map", f"{source['root']}=/mnt/shared/artifacts")
    assert code == 0, err
    data = json.loads(out)
    assert data["verified"] is True and data["artifact_uris_rewritten"] == 12
    assert {t["table"]: t["rows"] for t in data["tables"]}["runs"] == 8

    code, _, err = _cli(capsys, "store", "copy", "--from", source["uri"], "--to", target)
    assert code == 1 and "Error [INVALID_STATE]" in err and "not empty" in err and "Traceback" not in err

    code, _, err = _cli(capsys, "store", "copy", "--to", target, "--artifact-root-map", "no-equals-sign")
    assert code == 2 and "OLD=NEW" in err

    code, out, _ = _cli(capsys, "store", "verify", "--from", source["uri"], "--to", target, "--json",
                        "--artifact-root-map", f"{source['root']}=/mnt/shared/artifacts")
    assert code == 0 and json.loads(out)["verified"] is True

    # backup of the configured store (HANGAR_TRACKING_URI) by default
    monkeypatch.setenv("HANGAR_TRACKING_URI", source["uri"])
    code, out, err = _cli(capsys, "store", "backup", str(tmp_path / "b.db"), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["integrity"] == "ok" and data["path"] == str(tmp_path / "b.db") and data["tables"]["runs"] == 8
    code, out, _ = _cli(capsys, "store", "backup", str(tmp_path / "b.db"), "--force")
    assert code == 0 and "integrity ok" in out and str(tmp_path / "b.db") in out

    code, _, err = _cli(capsys, "store", "backup", "--store", "postgresql://u@h/db", str(tmp_path / "c.db"))
    assert code == 1 and "pg_dump" in err
