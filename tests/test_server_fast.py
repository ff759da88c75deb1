"""The lean path for hot tracking writes: it finds the same route Starlette would, goes through the
same guard (401, 403 + audit, 400, 413 as on the Starlette path), and the run -> experiment memo."""

from __future__ import annotations

import re

import pytest
from server_fixtures import start_hub
from sqlalchemy import delete, select

from hangar.server.fast import HOT_ROUTES, RouteMatcher
from hangar.server.routes import ROUTES
from hangar.store import schema as t


def _sample_path(path: str) -> str:
    values = {"key:path": "a/b", "path:path": "dir/f.txt", "name": "main.default.m", "schema": "main.s"}
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), "x1"), path)


def test_the_matcher_picks_the_route_starlette_picks_for_every_route():
    from starlette.routing import Match
    from starlette.routing import Route as StarletteRoute

    starlette_routes = [StarletteRoute(r.path, lambda request: None, methods=[r.method], name=r.name) for r in ROUTES]
    matcher = RouteMatcher(ROUTES)
    for route in ROUTES:
        scope = {"type": "http", "method": route.method, "path": _sample_path(route.path), "root_path": ""}
        expected = next(r.name for r in starlette_routes if r.matches(scope)[0] == Match.FULL)
        found, params = matcher.match(route.method, scope["path"])
        assert found.name == expected, route.path
        assert params == next(r for r in starlette_routes if r.name == expected).matches(scope)[1]["path_params"]
    assert HOT_ROUTES <= {r.name for r in ROUTES}


@pytest.fixture
def hub(tmp_path):
    server, hub = start_hub(f"sqlite:///{tmp_path / 'fast.db'}", tmp_path)
    with server:
        hub.server = server
        yield hub


def _count_fast(server, monkeypatch) -> list:
    """The routes FastPath answered (through the protocol's lane or its ASGI entry: both call ``answer``)."""
    seen = []
    fast = server.app.fast
    original = type(fast).answer

    def counting(self, method, path, route, *args):
        seen.append(route.name)
        return original(self, method, path, route, *args)

    monkeypatch.setattr(type(fast), "answer", counting)
    return seen


def test_hot_routes_take_the_lean_path_through_the_same_guard(hub, monkeypatch):
    seen = _count_fast(hub.server, monkeypatch)
    stranger = hub.user("stranger")
    with hub.admin() as a:
        exp = a.post("/experiments", json={"name": "e"}).json()["experiment_id"]
        r = a.post("/runs", json={"experiment_id": exp})
        assert r.status_code == 201 and r.headers["x-request-id"]
        run_id = r.json()["info"]["run_id"]
        ok = a.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": 1.5, "step": 3})
        assert ok.status_code == 200 and ok.json() == {} and ok.headers["content-type"] == "application/json"
        assert a.post(f"/runs/{run_id}/log-batch", json={"params": {"p": "1"}}).status_code == 200
        bad = a.post(f"/runs/{run_id}/metrics", content=b"{not json", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error_code"]
        nan = a.post(f"/runs/{run_id}/metrics", content=b'{"key": "m", "value": NaN}')
        assert nan.status_code == 400 and "finite" in nan.json()["message"]
        assert a.post(f"/runs/{run_id}/metrics", content=b"[1]").status_code == 400
        assert a.patch(f"/runs/{run_id}", json={"status": "FINISHED"}).status_code == 200
    with hub.client() as anonymous:
        r = anonymous.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": 2.0})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    with hub.client(stranger) as s:
        before = _metrics(hub.engine, run_id)
        denied = s.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": 2.0})
        assert denied.status_code == 403 and _metrics(hub.engine, run_id) == before
    with hub.engine.connect() as conn:
        row = conn.execute(select(t.audit_log.c.action, t.audit_log.c.outcome, t.audit_log.c.request_id)
                           .order_by(t.audit_log.c.seq.desc())).first()
    assert (row.action, row.outcome, row.request_id) == ("LOG_METRIC", "DENIED", denied.headers["x-request-id"])
    assert {"CREATE_RUN", "LOG_METRIC", "LOG_BATCH", "UPDATE_RUN"} <= set(seen)
    with hub.admin() as a:  # the rest still goes through Starlette
        n = len(seen)
        assert a.get(f"/runs/{run_id}").json()["data"]["metrics"] == {"m": 1.5}
        assert a.get(f"/runs/{run_id}/metrics/m").status_code == 200 and len(seen) == n


def test_oversized_bodies_are_refused_on_the_lean_path(hub):
    with hub.admin() as a:
        r = a.post("/runs/x/log-batch", content=b"{" + b" " * (17 * 1024 * 1024) + b"}")
        assert r.status_code == 413


def _metrics(engine, run_id: str) -> list:
    with engine.connect() as conn:
        return conn.execute(select(t.metrics.c.value).where(t.metrics.c.run_id == run_id)).all()


def test_the_run_experiment_memo_is_dropped_when_the_run_is_gone(hub):
    with hub.admin() as a:
        exp = a.post("/experiments", json={"name": "e"}).json()["experiment_id"]
        run_id = a.post("/runs", json={"experiment_id": exp}).json()["info"]["run_id"]
        memo = hub.server.app.state.services.run_experiments
        assert memo.get(run_id) == exp
        with hub.engine.begin() as conn:  # as hangar gc would, out of the server's sight
            for table in (t.latest_metrics, t.metrics, t.params, t.tags):
                conn.execute(delete(table).where(table.c.run_id == run_id))
            conn.execute(delete(t.runs).where(t.runs.c.run_id == run_id))
        assert a.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": 1}).status_code == 404
        assert memo.get(run_id) is None


def test_changes_from_another_connection_take_effect_on_the_next_hot_write(hub, tmp_path):
    """The memo's freshness check (PRAGMA data_version on a held connection, then the audit head) sees
    commits from any other connection, as another worker process would make them, between hot writes."""
    from hangar.governance import grants, principals, tokens
    from hangar.store.engine import create_store_engine

    other = create_store_engine(str(hub.engine.url))  # its own pool: another process's view of the file
    principals.create(other, "dana", "user", actor="t")
    made = tokens.create(other, "dana", "t", actor="t")
    with hub.admin() as a:
        exp = a.post("/experiments", json={"name": "e"}).json()["experiment_id"]
        run_id = a.post("/runs", json={"experiment_id": exp}).json()["info"]["run_id"]
    with hub.client(made.token) as d:
        assert d.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": 1}).status_code == 403
        grants.grant(other, "experiment", exp, "dana", "EDIT", actor="t")
        assert [d.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": i}).status_code for i in range(3)] == [200] * 3
        grants.revoke(other, "experiment", exp, "dana", "EDIT", actor="t")
        assert d.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": 9}).status_code == 403
        grants.grant(other, "experiment", exp, "dana", "EDIT", actor="t")
        assert d.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": 9}).status_code == 200
        tokens.revoke(other, made.info.id, actor="t")
        assert d.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": 9}).status_code == 401
    other.dispose()


def test_the_held_connection_steps_aside_when_busy_and_is_dropped_when_left_in_a_transaction(tmp_path):
    from hangar.store.rawsql import HeldConnection, sqlite_write
    from hangar.tracking.sql_store import SqlTrackingStore

    store = SqlTrackingStore(f"sqlite:///{tmp_path / 'h.db'}", str(tmp_path / "a"))
    held = HeldConnection(store.engine)
    with held.connection() as first:
        assert held.holds(first)
        with held.connection() as second:  # (another thread would get the same: a pooled stand-in)
            assert second is not first and not held.holds(second)
    with pytest.raises(ZeroDivisionError), sqlite_write(held) as cur:
        cur.execute("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, "
                    "last_update_time) VALUES ('x', 'a', 'active', 0, 0)")
        raise ZeroDivisionError
    with held.connection() as again:
        assert again is first and not again.in_transaction  # rolled back, still held
        assert again.execute("SELECT count(*) FROM experiments WHERE name = 'x'").fetchone()[0] == 0
        again.execute("BEGIN")  # left open: the connection cannot be trusted any more
    with held.connection() as fresh:
        assert fresh is not first and not fresh.in_transaction
    held.close()
    with held.connection() as after_close:  # a pooled connection from now on
        assert not held.holds(after_close)
    store.close()


def test_the_stores_held_connection_may_change_only_the_tracking_tables(tmp_path):
    """What lets the governance memo trust its data_version: SQLite refuses any other write on it."""
    import sqlite3

    from hangar.store.rawsql import sqlite_write
    from hangar.tracking.sql_store import SqlTrackingStore

    store = SqlTrackingStore(f"sqlite:///{tmp_path / 'h.db'}", str(tmp_path / "a"))
    exp = store.create_experiment("e")
    run_id = store.create_run(exp).info.run_id
    store.log_batch(run_id, params={"p": 1}, tags={"t": "v"})
    store.log_metric(run_id, "m", 1.0)
    store.update_run_info(run_id, status="FINISHED")
    for sql in ("INSERT INTO audit_log (seq) VALUES (999)", "DELETE FROM tokens", "UPDATE grants SET privilege = 'x'",
                "DROP TABLE metrics", "PRAGMA user_version = 7"):
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"), sqlite_write(store.hot) as cur:
            cur.execute(sql)
    with store.hot.connection() as conn:
        assert store.hot.holds(conn) and conn.execute("PRAGMA data_version").fetchone()[0] >= 1
    assert store.get_run(run_id).info.status == "FINISHED"
    store.close()


def test_responses_encode_entities_as_plain_would():
    import json

    from hangar.server.guard import encode
    from hangar.server.wire import plain
    from hangar.tracking.entities import Dataset, DatasetInput, Run, RunData, RunInfo

    run = Run(RunInfo("r1", "7", "name", "RUNNING", 1, None, "active", "file:///a", "u", None),
              RunData({"p": "1"}, {"m": 1.5}, {"t": "v"}), (DatasetInput(Dataset("d", "digest", "src", "local"), "train"),))
    assert json.loads(encode(run)) == json.loads(json.dumps(plain(run)))
    assert json.loads(encode({1: (1, 2), "big": 2**70})) == {"1": [1, 2], "big": 2**70}  # through plain
