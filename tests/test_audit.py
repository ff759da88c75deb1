"""The audit log: hash chain, tamper detection, anchors, filters and the CLI, on SQLite and PostgreSQL."""

import contextlib
import json
import multiprocessing as mp

import pytest
from sqlalchemy import delete, select, update

from hangar.catalog import audit
from hangar.cli.main import main
from hangar.errors import ConflictError, InvalidArgumentError
from hangar.store import schema as t


@contextlib.contextmanager
def write(engine):
    """A write transaction as the stores open one (BEGIN IMMEDIATE on SQLite)."""
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def append_many(engine, n, start=0, **fields):
    out = []
    for i in range(start, start + n):
        with write(engine) as conn:
            out.append(audit.append(conn, **{"actor": "alice", "action": "SET_ALIAS",
                                             "securable_type": "registered_model",
                                             "securable": "main.support.assistant",
                                             "details": {"alias": "champion", "version": i}, **fields}))
    return out


def check(engine, anchor=None):
    with engine.connect() as conn:
        return audit.verify(conn, anchor=anchor)


def head(engine):
    with engine.connect() as conn:
        return audit.anchor(conn)


def seqs(engine):
    with engine.connect() as conn:
        return conn.execute(select(t.audit_log.c.seq).order_by(t.audit_log.c.seq)).scalars().all()


# -- the chain ---------------------------------------------------------------------------
def test_empty_log_verifies(store):
    result = check(store.engine)
    assert result.ok and result.records == 0 and result.first_bad_seq is None
    assert head(store.engine) == (0, audit.GENESIS_HASH)
    assert check(store.engine, anchor=head(store.engine)).ok


def test_chain_over_many_appends(store):
    records = append_many(store.engine, 150)
    with write(store.engine) as conn:  # several records in one transaction chain too
        records += [audit.append(conn, actor="bob", action="CREATE_MODEL", securable_type="registered_model",
                                 securable=f"main.default.m{i}", request_id=f"req-{i}") for i in range(5)]
    assert records[0].prev_hash == audit.GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in zip(records, records[1:]))
    assert len({r.hash for r in records}) == len(records)
    r = records[7]
    assert r.hash == audit.record_hash(r.prev_hash, at=r.at, actor=r.actor, action=r.action,
                                       securable_type=r.securable_type, securable=r.securable, outcome=r.outcome,
                                       details=r.details, request_id=r.request_id)
    result = check(store.engine)
    assert result.ok and result.records == 155
    assert (result.head_seq, result.head_hash) == tuple(head(store.engine)) == (records[-1].seq, records[-1].hash)
    assert check(store.engine, anchor=head(store.engine)).ok
    with store.engine.connect() as conn:
        stored = audit.list_records(conn, descending=False, limit=1000)
    assert [s.hash for s in stored] == [r.hash for r in records]
    assert stored[7] == records[7]


def test_rolled_back_append_leaves_no_record_and_no_break(store):
    append_many(store.engine, 3)
    with pytest.raises(RuntimeError), write(store.engine) as conn:
        audit.append(conn, actor="alice", action="DELETE_MODEL", securable_type="registered_model",
                     securable="main.support.assistant")
        raise RuntimeError("the change failed, so its record goes too")
    append_many(store.engine, 2, start=3)
    result = check(store.engine)
    assert result.ok and result.records == 5  # on PostgreSQL the seq has a gap here: not tampering


def _appender(uri, worker, count, start_evt):
    from hangar.tracking.sql_store import SqlTrackingStore

    store = SqlTrackingStore(uri, "/tmp/unused-artifacts")
    start_evt.wait(30)
    for i in range(count):
        with write(store.engine) as conn:
            audit.append(conn, actor=f"worker-{worker}", action="LOAD_MODEL", securable_type="registered_model",
                         securable="main.support.assistant", details={"i": i})
    store.close()


@pytest.mark.slow
def test_concurrent_appends_from_four_processes_keep_one_chain(store):
    procs_n, per = 4, 25
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_appender, args=(store.uri, w, per, start)) for w in range(procs_n)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * procs_n
    result = check(store.engine)
    assert result.ok and result.records == procs_n * per, result
    with store.engine.connect() as conn:
        rows = audit.list_records(conn, action="LOAD_MODEL", limit=1000)
    assert sorted((r.actor, r.details["i"]) for r in rows) == sorted(
        (f"worker-{w}", i) for w in range(procs_n) for i in range(per))


# -- tampering ---------------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    {"details": json.dumps({"alias": "champion", "version": 99})},
    {"actor": "mallory"},
    {"at": 1},
    {"outcome": "DENIED"},
    {"details": None},
    {"details": "{not json"},
])
def test_edited_record_is_reported(store, change):
    records = append_many(store.engine, 10)
    victim = records[4].seq
    with write(store.engine) as conn:
        conn.execute(update(t.audit_log).where(t.audit_log.c.seq == victim).values(**change))
    result = check(store.engine)
    assert not result.ok and result.first_bad_seq == victim and "edited" in result.problem
    assert result.records == 4 and result.head_seq == records[3].seq


def test_whitespace_in_details_is_not_an_edit(store):
    records = append_many(store.engine, 3)
    with write(store.engine) as conn:
        conn.execute(update(t.audit_log).where(t.audit_log.c.seq == records[1].seq)
                     .values(details=json.dumps(records[1].details, indent=4)))
    assert check(store.engine).ok


def test_edited_record_with_its_hash_recomputed_breaks_the_next_link(store):
    records = append_many(store.engine, 6)
    r = records[2]
    forged = audit.record_hash(r.prev_hash, at=r.at, actor="mallory", action=r.action, securable_type=r.securable_type,
                               securable=r.securable, outcome=r.outcome, details=r.details, request_id=r.request_id)
    with write(store.engine) as conn:
        conn.execute(update(t.audit_log).where(t.audit_log.c.seq == r.seq).values(actor="mallory", hash=forged))
    result = check(store.engine)
    assert not result.ok and result.first_bad_seq == records[3].seq and "does not link" in result.problem


def test_deleted_middle_record_is_reported(store):
    records = append_many(store.engine, 10)
    with write(store.engine) as conn:
        conn.execute(delete(t.audit_log).where(t.audit_log.c.seq == records[5].seq))
    result = check(store.engine)
    assert not result.ok and result.first_bad_seq == records[6].seq
    assert f"between seq {records[4].seq} and {records[6].seq} are missing" in result.problem


def test_deleted_first_record_is_reported(store):
    records = append_many(store.engine, 4)
    with write(store.engine) as conn:
        conn.execute(delete(t.audit_log).where(t.audit_log.c.seq == records[0].seq))
    result = check(store.engine)
    assert not result.ok and result.first_bad_seq == records[1].seq and "first record" in result.problem


def test_deleted_last_record_is_caught_only_by_the_anchor(store):
    records = append_many(store.engine, 8)
    pinned = head(store.engine)
    assert pinned == (records[-1].seq, records[-1].hash)
    with write(store.engine) as conn:
        conn.execute(delete(t.audit_log).where(t.audit_log.c.seq == records[-1].seq))
    assert check(store.engine).ok  # the chain alone cannot tell: documented
    result = check(store.engine, anchor=str(pinned))
    assert not result.ok and result.first_bad_seq == pinned.seq and "deleted" in result.problem
    # appending afterwards (SQLite reuses the seq) does not hide the deletion either
    append_many(store.engine, 2, start=100)
    result = check(store.engine, anchor=pinned)
    assert not result.ok and result.first_bad_seq == pinned.seq


def test_truncated_log_is_caught_by_the_anchor(store):
    append_many(store.engine, 3)
    pinned = head(store.engine)
    with write(store.engine) as conn:
        conn.execute(delete(t.audit_log))
    assert check(store.engine).ok
    result = check(store.engine, anchor=pinned)
    assert not result.ok and result.records == 0 and "end were deleted" in result.problem


def test_rewritten_chain_is_caught_by_the_anchor(store):
    """Whoever edits a record and recomputes every hash after it keeps a valid chain: the anchor differs."""
    records = append_many(store.engine, 5)
    pinned = head(store.engine)
    prev = records[1].hash
    with write(store.engine) as conn:
        for r in records[2:]:
            actor = "mallory" if r is records[2] else r.actor
            digest = audit.record_hash(prev, at=r.at, actor=actor, action=r.action, securable_type=r.securable_type,
                                       securable=r.securable, outcome=r.outcome, details=r.details,
                                       request_id=r.request_id)
            conn.execute(update(t.audit_log).where(t.audit_log.c.seq == r.seq)
                         .values(actor=actor, prev_hash=prev, hash=digest))
            prev = digest
    assert check(store.engine).ok
    result = check(store.engine, anchor=pinned)
    assert not result.ok and result.first_bad_seq == pinned.seq and "anchor" in result.problem


def test_anchor_parsing():
    h = "ab" * 32
    assert audit.AuditAnchor.parse(f"12:{h}") == (12, h)
    assert audit.AuditAnchor.parse((3, h.upper())) == (3, h)
    for bad in ("12", f"x:{h}", "3:abc", f"-1:{h}", None):
        with pytest.raises(InvalidArgumentError):
            audit.AuditAnchor.parse(bad)


# -- appending: validation -----------------------------------------------------------------
@pytest.mark.parametrize("fields,message", [
    ({"outcome": "MAYBE"}, "outcome"),
    ({"action": "X" * 65}, "action"),
    ({"actor": ""}, "actor"),
    ({"securable": None}, "securable"),
    ({"details": ["not", "a", "dict"]}, "dict"),
    ({"details": {"x": float("nan")}}, "JSON"),
    ({"details": {"x": object()}}, "JSON"),
    ({"at": "yesterday"}, "milliseconds"),
])
def test_bad_records_are_refused(store, fields, message):
    base = {"actor": "a", "action": "CREATE_MODEL", "securable_type": "registered_model", "securable": "main.x.y"}
    with pytest.raises(InvalidArgumentError, match=message), write(store.engine) as conn:
        audit.append(conn, **{**base, **fields})
    assert check(store.engine).records == 0


def test_append_needs_a_transaction(store):
    with store.engine.connect() as conn, pytest.raises(InvalidArgumentError, match="transaction"):
        audit.append(conn, actor="a", action="CREATE_MODEL", securable_type="registered_model", securable="main.x.y")


def test_record_opens_its_own_transaction(store):
    r = audit.record(store.engine, actor="a", action="LOAD_MODEL", securable_type="registered_model",
                     securable="main.x.y", details={"version": 1, "alias": None})
    assert r.seq == seqs(store.engine)[0] and r.details == {"version": 1, "alias": None}
    assert check(store.engine).ok


def test_postgresql_refuses_a_snapshot_transaction(pg_uri, tmp_path):
    from hangar.tracking.sql_store import SqlTrackingStore

    store = SqlTrackingStore(pg_uri, str(tmp_path / "artifacts"))
    with store.engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ")
        with pytest.raises(ConflictError, match="READ COMMITTED"), conn.begin():
            audit.append(conn, actor="a", action="CREATE_MODEL", securable_type="registered_model",
                         securable="main.x.y")
    store.close()


# -- listing -------------------------------------------------------------------------------
@pytest.fixture
def populated(store):
    rows = [
        (1000, "alice", "CREATE_CATALOG", "catalog", "main"),
        (2000, "alice", "CREATE_SCHEMA", "schema", "main.support"),
        (3000, "bob", "CREATE_MODEL", "registered_model", "main.support.assistant"),
        (4000, "bob", "SET_ALIAS", "registered_model", "main.support.assistant"),
        (5000, "carol", "LOAD_MODEL", "registered_model", "main.support.assistant_v2"),
        (6000, "carol", "CREATE_MODEL", "registered_model", "mainXsupport.other"),
        (7000, "dave", "SET_ALIAS", "registered_model", "Main.Support.Assistant"),
    ]
    with write(store.engine) as conn:
        for at, actor, action, kind, name in rows:
            audit.append(conn, at=at, actor=actor, action=action, securable_type=kind, securable=name)
    return store


def _list(store, **kw):
    with store.engine.connect() as conn:
        return [(r.at, r.securable) for r in audit.list_records(conn, **kw)]


def test_list_filters(populated):
    s = populated
    assert [at for at, _ in _list(s)] == [7000, 6000, 5000, 4000, 3000, 2000, 1000]
    assert [at for at, _ in _list(s, descending=False, limit=2)] == [1000, 2000]
    assert [at for at, _ in _list(s, securable="main.support.assistant")] == [4000, 3000]
    # prefix: exact case, and '_' / '%' are not wildcards
    assert [at for at, _ in _list(s, securable_prefix="main.support.")] == [5000, 4000, 3000]
    assert _list(s, securable_prefix="main_support") == []
    # under: the securable and what lies beneath it, not its namesakes
    assert [at for at, _ in _list(s, under="main.support")] == [5000, 4000, 3000, 2000]
    assert [at for at, _ in _list(s, under="main.support.assistant")] == [4000, 3000]
    assert [at for at, _ in _list(s, action="SET_ALIAS")] == [7000, 4000]
    assert [at for at, _ in _list(s, actor="carol")] == [6000, 5000]
    assert [at for at, _ in _list(s, since_ms=3000, until_ms=6000)] == [5000, 4000, 3000]
    assert [at for at, _ in _list(s, action="CREATE_MODEL", actor="bob", under="main")] == [3000]
    with pytest.raises(InvalidArgumentError):
        _list(s, limit=0)


# -- the command line ------------------------------------------------------------------------
def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_.value.code or 0, out.out, out.err


@pytest.fixture
def cli_store(populated, tmp_path, monkeypatch):
    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HANGAR_TRACKING_URI", populated.uri)
    monkeypatch.setenv("COLUMNS", "200")
    return populated


def test_cli_list(capsys, cli_store):
    code, out, _ = run(capsys, "audit", "list", "--securable", "main.support.assistant", "--json")
    assert code == 0 and [r["action"] for r in json.loads(out)] == ["SET_ALIAS", "CREATE_MODEL"]
    code, out, _ = run(capsys, "audit", "list", "--since", "1970-01-01T00:00:04", "--until", "1970-01-01T00:00:06Z", "--json")
    assert code == 0 and [r["at"] for r in json.loads(out)] == [5000, 4000]
    code, out, _ = run(capsys, "audit", "list", "--since", "1h", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run(capsys, "audit", "list", "--action", "SET_ALIAS")
    assert code == 0 and "Main.Support.Assistant" in out and "bob" in out and "CREATE_MODEL" not in out
    code, _, err = run(capsys, "audit", "list", "--since", "yesterday-ish")
    assert code == 2 and "duration ago" in err


def test_cli_verify_and_anchor(capsys, cli_store):
    code, out, _ = run(capsys, "audit", "verify")
    assert code == 0 and "intact: 7 records" in out
    code, pinned, _ = run(capsys, "audit", "anchor")
    pinned = pinned.strip()
    code, out, _ = run(capsys, "audit", "verify", "--anchor", pinned, "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    seq = seqs(cli_store.engine)
    with write(cli_store.engine) as conn:
        conn.execute(update(t.audit_log).where(t.audit_log.c.seq == seq[2]).values(actor="mallory"))
    code, _, err = run(capsys, "audit", "verify")
    assert code == 1 and f"BROKEN at seq {seq[2]}" in err and "edited" in err
    code, out, _ = run(capsys, "audit", "verify", "--json")
    assert code == 1 and json.loads(out)["first_bad_seq"] == seq[2]
    code, _, err = run(capsys, "audit", "verify", "--anchor", "nonsense")
    assert code == 1 and "SEQ:HASH" in err


def test_cli_verify_catches_deleted_last_record_with_anchor(capsys, cli_store):
    code, pinned, _ = run(capsys, "audit", "anchor", "--json")
    pinned = json.loads(pinned)
    with write(cli_store.engine) as conn:
        conn.execute(delete(t.audit_log).where(t.audit_log.c.seq == pinned["seq"]))
    assert run(capsys, "audit", "verify")[0] == 0
    code, _, err = run(capsys, "audit", "verify", "--anchor", f"{pinned['seq']}:{pinned['hash']}")
    assert code == 1 and f"seq {pinned['seq']}" in err


def test_parse_time():
    from hangar.cli.audit import parse_time

    now = 10_000_000_000
    assert parse_time("1h", now) == now - 3_600_000
    assert parse_time("7d", now) == now - 7 * 86_400_000
    assert parse_time("30m", now) == now - 1_800_000
    assert parse_time("1970-01-02", now) == 86_400_000
    assert parse_time("1970-01-01T01:00:00+01:00", now) == 0
    assert parse_time("1970-01-01T00:00:01Z", now) == 1000
    assert parse_time("1700000000000", now) == 1_700_000_000_000
