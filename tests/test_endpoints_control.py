"""Endpoint control plane pieces: config validation, the store and CLI, traffic split, secrets,
rate limits (local and Redis), the inference table, alias following."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from hangar.errors import AlreadyExistsError, InvalidArgumentError, MissingCredentialError, NotFoundError
from hangar.serving.endpoint_config import parse_endpoint_config

pytestmark = pytest.mark.timeout(120)

CONFIG = {
    "served_entities": [
        {"model": "models:/main.default.support@champion", "weight": 90},
        {"model": "models:/main.default.support@challenger", "weight": 10, "max_batch_size": 8},
    ],
    "limits": {"rate_per_minute": 120},
    "secrets": {"OPENAI_API_KEY": {"env": "SUPPORT_KEY"}},
    "inference_table": {"parquet": "/tmp/inference"},
}


def test_config_defaults_and_round_trip():
    cfg = parse_endpoint_config(CONFIG)
    assert [e.name for e in cfg.served_entities] == ["champion", "challenger"]
    assert cfg.served_entities[1].max_batch_size == 8 and cfg.served_entities[0].follows_alias
    assert cfg.limits.max_payload_bytes == 16 * 1024 * 1024 and cfg.limits.rate_per_minute == 120
    assert parse_endpoint_config(cfg.to_dict()) == cfg


def test_entity_settings_reach_the_model_queue():
    from hangar.serving.endpoint_reload import entity_settings as _settings_for
    from hangar.serving.endpoint_runtime import single_model_config
    from hangar.serving.settings import ServingSettings

    cfg = parse_endpoint_config({"served_entities": [{"model": "m", "inline_max_ms": 0, "threads": 3}]})
    settings = _settings_for(cfg.served_entities[0], cfg.limits)
    assert (settings.inline_max_ms, settings.model_threads) == (0, 3)
    single = single_model_config("/pkg", ServingSettings(inline_max_ms=0.25, max_wait_ms=7))
    again = _settings_for(single.served_entities[0], single.limits)
    assert (again.inline_max_ms, again.max_wait_ms) == (0.25, 7)


@pytest.mark.parametrize("change, message", [
    ({"served_entities": []}, "served_entities must be a non-empty list"),
    ({"served_entities": [{"model": "m", "wieght": 1}]}, "unknown field(s) ['wieght']"),
    ({"served_entities": [{"model": "m", "weight": -1}]}, "weight must be a number >= 0"),
    ({"served_entities": [{"model": "m", "weight": 0}]}, "positive weight"),
    ({"served_entities": [{"model": "m", "inline_max_ms": -1}]}, "inline_max_ms must be a number >= 0"),
    ({"served_entities": [{"model": "m", "name": "a"}, {"model": "n", "name": "a"}]}, "used twice"),
    ({"served_entities": [{"model": "models:/a b c"}]}, "not a valid model URI"),
    ({"secrets": {"KEY": "sk-live-123"}}, "never the secret itself"),
    ({"secrets": {"KEY": {"env": "A", "file": "/x"}}}, "exactly one of"),
    ({"limits": {"rate_per_minute": 0}}, "rate_per_minute must be an integer >= 1"),
    ({"inference_table": {"parquet": "/a", "sql": "sqlite:///x#t"}}, "exactly one"),
    ({"rate_limit_redis": "http://x"}, "redis:// URL"),
    ({"colour": "blue"}, "unknown field(s) ['colour']"),
])
def test_config_errors_name_the_field(change, message):
    with pytest.raises(InvalidArgumentError, match=None) as err:
        parse_endpoint_config({**CONFIG, **change})
    assert message in err.value.message


def test_store_create_update_get_list_delete_audited(store):
    from hangar.catalog import audit
    from hangar.serving.endpoint_store import EndpointStore

    eps = EndpointStore(store.engine, "alice")
    cfg = parse_endpoint_config(CONFIG)
    ep = eps.create("support", cfg)
    assert (ep.revision, ep.created_by, ep.config) == (1, "alice", cfg)
    with pytest.raises(AlreadyExistsError):
        eps.create("support", cfg)
    with pytest.raises(InvalidArgumentError):
        eps.create("Bad Name", cfg)
    two = parse_endpoint_config({**CONFIG, "served_entities": CONFIG["served_entities"][:1]})
    assert eps.update("support", two).revision == 2 and eps.get("support").config == two
    assert [e.name for e in eps.list()] == ["support"]
    from hangar.governance import grants, principals

    with store.engine.connect() as conn:
        assert grants.owner_of(conn, "endpoint", "support") == "alice", "the creator owns it"
    principals.create(store.engine, "bob", actor="alice")
    grants.grant(store.engine, "endpoint", "support", "bob", "QUERY", actor="alice")
    eps.delete("support")
    with store.engine.connect() as conn:
        assert grants.owner_of(conn, "endpoint", "support") is None
    assert grants.list_grants(store.engine, "endpoint", "support") == [], "deleting revokes the grants on it"
    with pytest.raises(NotFoundError):
        eps.get("support")
    with pytest.raises(NotFoundError):
        eps.update("support", cfg)
    with store.engine.connect() as conn:
        actions = [r.action for r in audit.list_records(conn, securable="support")]
        assert audit.verify(conn).ok
    assert actions == ["REVOKE", "DELETE_ENDPOINT", "GRANT", "UPDATE_ENDPOINT", "CREATE_ENDPOINT"]  # newest first
    with store.engine.connect() as conn:
        update_record = next(r for r in audit.list_records(conn, securable="support") if r.action == "UPDATE_ENDPOINT")
    assert update_record.details["revision"] == 2
    assert eps.stamp("support") is None


def test_cli_round_trip(tmp_path):
    import yaml

    env = {**os.environ, "HANGAR_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    path = tmp_path / "ep.yaml"
    path.write_text(yaml.safe_dump(CONFIG))

    def hangar(*args):
        return subprocess.run([sys.executable, "-m", "hangar.cli.main", "endpoints", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    assert hangar("create", "support", "--config", str(path)).returncode == 0
    shown = hangar("get", "support")
    assert "champion" in shown.stdout and "120/min per caller" in shown.stdout and "OPENAI_API_KEY" in shown.stdout
    assert json.loads(hangar("list", "--json").stdout)[0]["name"] == "support"
    dup = hangar("create", "support", "--config", str(path))
    assert dup.returncode == 1 and "already exists" in dup.stderr
    path.write_text("served_entities: [{model: x, weight: [1]}]")
    bad = hangar("update", "support", "--config", str(path))
    assert bad.returncode == 1 and "weight must be a number" in bad.stderr and "Traceback" not in bad.stderr
    assert hangar("delete", "support").returncode == 0
    assert hangar("get", "support").returncode == 3


def test_traffic_split_is_weighted_and_deterministic_per_request_id():
    from hangar.serving.traffic import TrafficSplit

    split = TrafficSplit([90, 10])
    picks = [split.choose(f"req-{i}") for i in range(20_000)]
    assert 0.88 < picks.count(0) / len(picks) < 0.92
    assert all(split.choose(f"req-{i}") == picks[i] for i in range(500))
    assert TrafficSplit([0, 1]).choose("anything") == 1 and TrafficSplit([1, 0]).choose() == 0
    random_picks = [split.choose() for _ in range(5000)]
    assert 0.85 < random_picks.count(0) / 5000 < 0.95


def test_secrets_resolve_from_env_and_file_without_echoing_values(tmp_path, monkeypatch):
    from hangar.serving.secrets import resolve_secrets

    (tmp_path / "key").write_text("sk-from-file\n")
    monkeypatch.setenv("SUPPORT_KEY", "sk-from-env")
    values = resolve_secrets({"A": {"env": "SUPPORT_KEY"}, "B": {"file": str(tmp_path / "key")}})
    assert values == {"A": "sk-from-env", "B": "sk-from-file"}
    monkeypatch.setenv("EMPTY_KEY", "")
    with pytest.raises(MissingCredentialError, match="EMPTY_KEY is not set"):
        resolve_secrets({"A": {"env": "EMPTY_KEY"}})
    with pytest.raises(MissingCredentialError, match="cannot read the file"):
        resolve_secrets({"A": {"file": str(tmp_path / "missing")}})


def test_local_rate_limiter_token_bucket():
    from hangar.serving.rate_limit import LocalRateLimiter

    now = [1000.0]
    rl = LocalRateLimiter(60, clock=lambda: now[0])
    assert all(rl.acquire_now("a")[0] for _ in range(60))
    allowed, wait = rl.acquire_now("a")
    assert not allowed and 0.9 < wait <= 1.0
    assert rl.acquire_now("b")[0], "callers are counted apart"
    now[0] += 1.0
    assert rl.acquire_now("a")[0] and not rl.acquire_now("a")[0]


def test_redis_rate_limiter_is_shared_between_instances():
    pytest.importorskip("redis")
    import asyncio
    import uuid

    from hangar.serving.rate_limit import RedisRateLimiter

    async def go():
        prefix = f"hangar:test:{uuid.uuid4().hex}"
        one = RedisRateLimiter("redis://127.0.0.1:6379/0", 10, prefix=prefix)
        two = RedisRateLimiter("redis://127.0.0.1:6379/0", 10, prefix=prefix)
        results = [await (one if i % 2 else two).acquire("caller") for i in range(12)]
        await one.close()
        await two.close()
        return results

    results = asyncio.run(go())
    assert [ok for ok, _ in results] == [True] * 10 + [False] * 2
    assert 5.0 < results[-1][1] <= 6.0  # 10/min: one token every 6 s


def test_inference_table_parquet_drains_on_close(tmp_path):
    import pyarrow.parquet as pq

    from hangar.monitoring.inference_table import InferenceTable, ParquetTarget

    table = InferenceTable(ParquetTarget(str(tmp_path / "inf")), queue_size=100_000, flush_rows=300, flush_seconds=60)
    for i in range(1000):
        table.record(request_id=f"r{i}", endpoint="support", served_entity="champion", model_version="m/1",
                     latency_ms=1.5, status_code=200, request={"inputs": [i]}, response=b'{"predictions": [1]}',
                     prompt_tokens=3)
    table.close()
    rows = pq.read_table(tmp_path / "inf").to_pylist()
    assert len(rows) == 1000 and table.dropped == 0 and table.written == 1000
    first = min(rows, key=lambda r: int(r["request_id"][1:]))
    assert json.loads(first["request"]) == {"inputs": [0]} and first["response"] == '{"predictions": [1]}'
    table.record(request_id="late")  # after close: ignored, never raises
    assert table.written == 1000


def test_inference_table_bounded_queue_drops_and_counts(tmp_path):
    import threading

    from hangar.monitoring.inference_table import InferenceTable

    gate = threading.Event()

    class SlowTarget:
        rows: list = []

        def write(self, rows):
            gate.wait(10)
            self.rows.extend(rows)

        def close(self):
            pass

    target = SlowTarget()
    table = InferenceTable(target, queue_size=10, flush_rows=1, flush_seconds=0.01)
    for i in range(100):
        table.record(request_id=str(i))
    assert table.dropped >= 80, "a writer that cannot keep up costs records, not memory"
    gate.set()
    table.close()
    assert len(target.rows) + table.dropped == 100


def test_inference_table_sql(pg_uri):
    import sqlalchemy as sa

    from hangar.monitoring.inference_table import InferenceTable, SqlTarget

    table = InferenceTable(SqlTarget(f"{pg_uri}#inference_log"), flush_rows=10, flush_seconds=0.05)
    for i in range(25):
        table.record(request_id=f"r{i}", status_code=200 if i else 429, cancelled=i == 3,
                     route="/" + "x" * 5000 if i == 7 else "/invocations",  # a caller's path longer than the column
                     request=b'{"a\x00": 1}' if i == 8 else b"{}")  # a NUL byte, which PostgreSQL refuses in text
    table.close()
    engine = sa.create_engine(pg_uri)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT request_id, status_code, cancelled FROM inference_log")).all()
        long_route = conn.execute(sa.text("SELECT route FROM inference_log WHERE request_id = 'r7'")).scalar_one()
        nul = conn.execute(sa.text("SELECT request FROM inference_log WHERE request_id = 'r8'")).scalar_one()
    engine.dispose()
    assert len(rows) == 25 and ("r0", 429, False) in rows and ("r3", 200, True) in rows
    assert table.failed_writes == 0 and long_route == "/" + "x" * 63, "cut to the column, not a failed insert"
    assert nul == '{"a\ufffd": 1}'


def test_alias_watcher_switches_and_survives_a_failed_load():
    from hangar.serving.alias_watch import AliasWatcher, FollowedAlias

    versions = {"main.default.m@champion": 1}
    loaded: list = []

    def on_move(key, version):
        if version == 3:
            raise RuntimeError("broken package")
        loaded.append((key, version))

    target = FollowedAlias("champion", "main.default.m", "champion", 1)
    watcher = AliasWatcher([target], lambda m, a: versions[f"{m}@{a}"], on_move, poll_s=0.05)
    watcher.check_now()
    assert loaded == []
    versions["main.default.m@champion"] = 2
    watcher.check_now()
    assert loaded == [("champion", 2)] and target.version == 2
    versions["main.default.m@champion"] = 3
    watcher.check_now()
    assert target.version == 2, "a version that fails to load is not switched to"
    watcher.start()
    versions["main.default.m@champion"] = 4
    deadline = time.monotonic() + 5
    while target.version != 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    watcher.stop()
    assert target.version == 4 and loaded[-1] == ("champion", 4)


def test_alias_move_wakes_a_postgresql_listener_at_once(pg_uri, tmp_path, package):
    """With a long poll interval, only the LISTEN/NOTIFY path can see the move quickly."""
    from hangar.catalog.client import Client
    from hangar.serving.alias_watch import AliasWatcher, FollowedAlias, listen_url_for

    client = Client(pg_uri, str(tmp_path / "artifacts"))
    v1 = client.register_model(str(package), "main.default.watched")
    v2 = client.register_model(str(package), "main.default.watched")
    client.set_alias("main.default.watched", "champion", v1.version)
    target = FollowedAlias("champion", "main.default.watched", "champion", v1.version)
    moved = []
    watcher = AliasWatcher([target], lambda m, a: client.get_version_by_alias(m, a).version,
                           lambda key, v: moved.append(v), poll_s=60, listen_url=listen_url_for(pg_uri))
    watcher.start()
    time.sleep(0.5)  # the listener is connected
    client.set_alias("main.default.watched", "champion", v2.version)
    deadline = time.monotonic() + 10
    while not moved and time.monotonic() < deadline:
        time.sleep(0.02)
    watcher.stop()
    client.store.close()
    assert moved == [v2.version]


def test_entity_threads_reach_the_model_queue(tmp_path):
    import hangar.pyfunc as hp
    from hangar.serving.app import make_batcher
    from hangar.serving.endpoint_reload import entity_settings as _settings_for

    cfg = parse_endpoint_config({"served_entities": [{"model": "m", "threads": 3}, {"model": "n"}]})
    assert [e.threads for e in cfg.served_entities] == [3, 0]
    pkg = hp.save_model(tmp_path / "pkg", lambda df: list(df["x"]), input_example={"x": [1]})
    model = hp.load_model(pkg)
    assert make_batcher(model, _settings_for(cfg.served_entities[0], cfg.limits)).concurrency == 3
    assert make_batcher(model, _settings_for(cfg.served_entities[1], cfg.limits)).concurrency == 1
    with pytest.raises(InvalidArgumentError, match="threads must be an integer >= 0"):
        parse_endpoint_config({"served_entities": [{"model": "m", "threads": -1}]})


def _slots_routing(config):
    from hangar.serving.endpoint_app import EntitySlot, Routing, Served

    slots = tuple(EntitySlot(e, Served(app=None, version=e.model, model_uri=e.model)) for e in config.served_entities)
    return Routing(slots, None, config=config)


def test_update_plan_keeps_rebuilds_loads_and_removes():
    from hangar.serving.endpoint_reload import plan_update

    base = {"served_entities": [{"name": n, "model": f"m-{n}"} for n in "abcd"], "limits": {"rate_per_minute": 5},
            "secrets": {"K": {"env": "X"}, "OLD": {"env": "Y"}}}
    routing = _slots_routing(parse_endpoint_config(base))
    new = parse_endpoint_config({**base, "inference_table": {"parquet": "/tmp/t"}, "served_entities": [
        {"name": "a", "model": "m-a", "weight": 10}, {"name": "b", "model": "m-b", "max_batch_size": 4},
        {"name": "c", "model": "m-other"}, {"name": "e", "model": "m-e"}]})
    plan = plan_update(routing, new)
    assert [e.name for _, e in plan.keep] == ["a"] and [e.name for _, e in plan.rebuild] == ["b"]
    assert [e.name for e in plan.load] == ["c", "e"] and [s.entity.name for s in plan.remove] == ["d"]
    assert (plan.new_limiter, plan.new_table, plan.secrets_changed) == (False, True, False)
    assert plan.describe() == "loading c, e; rebuilding (new settings) b; removing d; re-weighting a; new inference table"
    limits = plan_update(routing, parse_endpoint_config({**base, "limits": {"rate_per_minute": 6, "request_timeout_s": 9}}))
    assert [e.name for _, e in limits.rebuild] == list("abcd") and limits.new_limiter, "the entity apps enforce timeouts"
    secrets = plan_update(routing, parse_endpoint_config({**base, "secrets": {"K": {"file": "/run/k"}}}))
    assert [e.name for e in secrets.load] == list("abcd"), "a model may read its secrets when it loads"
    assert secrets.secrets_dropped == ["OLD"]
    same = plan_update(routing, parse_endpoint_config(base))
    assert same.describe() == "no change to what is served" and [e.name for _, e in same.keep] == list("abcd")


def test_runtime_applies_an_update_keeps_serving_on_a_bad_one_and_stops_when_deleted(store, tmp_path):
    """In process, through the ASGI app: a broken package in an update changes nothing; a good one
    switches the routing (the rebuilt entity keeps its loaded model); deletion answers 404."""
    import asyncio

    import httpx

    import hangar.pyfunc as hp
    from hangar.serving.endpoint_runtime import EndpointRuntime
    from hangar.serving.endpoint_store import EndpointStore

    one = hp.save_model(tmp_path / "one", lambda df: [len(t) for t in df["text"]], input_example={"text": ["a"]})
    ten = hp.save_model(tmp_path / "ten", lambda df: [10 * len(t) for t in df["text"]], input_example={"text": ["a"]})
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: [not a mapping\n")
    eps = EndpointStore(store.engine, "alice")

    def cfg(*entities, **extra):
        return parse_endpoint_config({"served_entities": list(entities), "alias_poll_seconds": 60, **extra})

    ep = eps.create("rt", cfg({"name": "a", "model": str(one)}))
    runtime = EndpointRuntime("rt", ep.config, record_lineage=False, store=eps, stamp=(ep.created_at, ep.revision))
    app = runtime.build()
    table = tmp_path / "table"

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            async def ask():
                r = await client.post("/invocations", json={"inputs": {"text": ["abc"]}})
                return r.status_code, r.json(), r.headers.get("x-hangar-served-by")

            first = app.routing
            assert (await ask())[:2] == (200, {"predictions": [3]})
            eps.update("rt", cfg({"name": "a", "model": str(one)}, {"name": "b", "model": str(broken), "weight": 1000}))
            runtime.check_config()
            assert app.routing is first, "a config whose entity cannot load changes nothing"
            assert [(await ask())[1] for _ in range(5)] == [{"predictions": [3]}] * 5
            runtime.check_config()  # retried after a pause, not at every poll
            assert app.routing is first
            eps.update("rt", cfg({"name": "a", "model": str(one), "weight": 0, "threads": 2}, {"name": "b", "model": str(ten)},
                                 inference_table={"parquet": str(table), "flush_seconds": 0.05},
                                 limits={"rate_per_minute": 1000}))
            runtime.check_config()
            now = app.routing
            assert now is not first and now.revision == 3 and [s.entity.name for s in now.slots] == ["a", "b"]
            assert now.slots[0].current.model is first.slots[0].current.model, "settings only: no reload from storage"
            assert now.slots[0].current.app is not first.slots[0].current.app
            assert now.slots[0].current.app.batcher.concurrency == 2 and now.table is not None and now.limiter is not None
            assert {tuple((await ask())[1]["predictions"]) for _ in range(10)} == {(30,)}, "weights 0:100"
            eps.delete("rt")
            runtime.check_config()
            status, body, _ = await ask()
            assert (status, body["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
            assert (await client.get("/ready")).status_code == 503
            assert (await client.get("/health")).status_code == 200
            metrics = (await client.get("/metrics")).text
            for outcome, count in (("applied", 1), ("failed", 1), ("deleted", 1)):
                assert f'hangar_endpoint_config_reloads_total{{outcome="{outcome}"}} {count}.0' in metrics
            assert 'hangar_serving_requests_total{method="POST",route="/invocations",served_entity="a",status="200"}' \
                in metrics, "an entity's counters outlive its rebuilt app"

    try:
        asyncio.run(scenario())
    finally:
        runtime.stop()
    import pyarrow.parquet as pq

    assert len(pq.read_table(table).to_pylist()) == 10, "the replaced table drained when the runtime stopped"


def test_endpoint_change_wakes_a_postgresql_listener_at_once(pg_uri):
    from hangar.serving.alias_watch import AliasWatcher, listen_url_for
    from hangar.serving.endpoint_store import EndpointStore
    from hangar.tracking.client import open_store

    store = open_store(pg_uri, None)
    eps = EndpointStore(store.engine, "alice")
    eps.create("woken", parse_endpoint_config({"served_entities": [{"model": "m"}]}))
    polls = []
    watcher = AliasWatcher([], lambda m, a: 0, lambda k, v: None, poll_s=60, listen_url=listen_url_for(pg_uri),
                           on_poll=lambda: polls.append(eps.stamp("woken")))
    watcher.start()
    try:
        time.sleep(0.5)  # the listener is connected
        eps.update("woken", parse_endpoint_config({"served_entities": [{"model": "n"}]}))
        deadline = time.monotonic() + 10
        while not polls and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watcher.stop()
        store.close()
    assert polls and polls[0][1] == 2
