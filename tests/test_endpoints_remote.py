"""Endpoints through a Hangar server: their definitions over ``/api/v1/endpoints`` (owner, grants,
the models they serve), the CLI with ``HANGAR_TRACKING_URI=http://…``, and ``hangar endpoints
serve`` / ``hangar serve --auth`` whose callers' tokens are checked by the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from server_fixtures import start_hub
from test_endpoints_serving import _free_port
from test_endpoints_serving import _wait_for as _until
from test_serving import wait_ready

from hangar.demo_serve import stop
from hangar.errors import NotFoundError, PermissionDeniedError
from hangar.governance import grants
from hangar.remote import ServerClient
from hangar.serving.endpoint_config import parse_endpoint_config
from hangar.serving.endpoint_store import RestEndpointStore

M = "main.default.m"
ASSETS = str(Path(__file__).parent / "assets")


@pytest.fixture
def hub(tmp_path, package):
    from hangar.catalog.client import Client

    server, hub = start_hub(f"sqlite:///{tmp_path / 'server.db'}", tmp_path)
    with server:
        c = Client(f"sqlite:///{tmp_path / 'server.db'}", str(tmp_path / "artifacts"), actor="admin")
        c.register_model(package, M)
        c.set_alias(M, "champion", 1)
        c.store.close()
        yield hub


def _store(hub, token) -> RestEndpointStore:
    return RestEndpointStore(ServerClient(hub.url, token))


def _config(model: str = f"models:/{M}@champion", **extra):
    return parse_endpoint_config({"served_entities": [{"model": model}], **extra})


def _audit(hub, **filters) -> list[dict]:
    with hub.admin() as a:
        return a.get("/audit", params={"limit": 50, **filters}).json()["records"]


def test_endpoint_definitions_through_the_server_follow_owner_and_grants(hub):
    owner, other = hub.user("owner"), hub.user("other")
    ours, theirs = _store(hub, owner), _store(hub, other)
    with pytest.raises(PermissionDeniedError):  # the owner cannot yet use the model the endpoint would serve
        ours.create("bot", _config())
    assert _store(hub, hub.admin_token).list() == []
    for privilege in ("USE_CATALOG",):
        grants.grant(hub.engine, "catalog", "main", "owner", privilege, actor="test")
    grants.grant(hub.engine, "schema", "main.default", "owner", "USE_SCHEMA", actor="test")
    grants.grant(hub.engine, "registered_model", M, "owner", "EXECUTE", actor="test")
    created = ours.create("bot", _config(limits={"rate_per_minute": 60}))
    assert (created.name, created.revision, created.created_by) == ("bot", 1, "owner")
    assert created.config.limits.rate_per_minute == 60
    assert [e.name for e in ours.list()] == ["bot"] and theirs.list() == []
    with pytest.raises(PermissionDeniedError):
        theirs.get("bot")
    grants.grant(hub.engine, "endpoint", "bot", "other", "QUERY", actor="test")
    assert theirs.get("bot").revision == 1 and [e.name for e in theirs.list()] == ["bot"]
    with pytest.raises(PermissionDeniedError):  # QUERY reads; MANAGE changes
        theirs.update("bot", _config(alias_poll_seconds=1))
    with pytest.raises(PermissionDeniedError):
        theirs.delete("bot")
    assert ours.update("bot", _config(alias_poll_seconds=1)).revision == 2
    assert ours.stamp("bot")[1] == 2 and ours.revision("bot") == 2
    with pytest.raises(PermissionDeniedError):  # an update may not switch to a model the owner cannot use
        ours.update("bot", _config("models:/main.default.secret@champion"))
    assert ours.get("bot").revision == 2
    ours.delete("bot")
    assert ours.stamp("bot") is None, "a deleted endpoint is gone for its serving process"
    with pytest.raises(NotFoundError):
        _store(hub, hub.admin_token).get("bot")
    # deleting revoked the grants on it: the same name created again owes nothing to the old one
    _store(hub, hub.admin_token).create("bot", _config())
    with pytest.raises(PermissionDeniedError):
        theirs.get("bot")
    actions = [r["action"] for r in _audit(hub, securable="bot")]
    assert {"CREATE_ENDPOINT", "UPDATE_ENDPOINT", "DELETE_ENDPOINT", "REVOKE"} <= set(actions)
    denied = [r for r in _audit(hub, securable=M) if r["outcome"] == "DENIED"]
    assert denied and denied[0]["action"] == "CREATE_ENDPOINT" and denied[0]["actor"] == "owner"


@pytest.mark.parametrize("body, words", [
    ({"name": "bot"}, "needs 'config'"),
    ({"name": "bot", "config": {"served_entities": []}}, "served_entities"),
    ({"name": "Bad Name!", "config": {"served_entities": [{"model": "/x"}]}}, "Endpoint name"),
    ({"name": "bot", "config": {"served_entities": [{"model": "/x", "weight": -1}]}}, "weight"),
    ({"name": "bot", "config": {"served_entities": [{"model": "models:/a.b"}]}}, "model"),
    ({"name": "bot", "config": {"served_entities": [{"model": "/x"}], "secrets": {"K": "sk-plain"}}}, "never the secret"),
])
def test_a_bad_endpoint_definition_is_a_400_naming_the_problem(hub, body, words):
    with hub.admin() as a:
        r = a.post("/endpoints", json=body)
        assert r.status_code == 400 and words in r.json()["message"], r.text
        assert a.get("/endpoints").json() == {"endpoints": []}


def test_the_server_keeps_a_plain_request_id_from_its_caller(hub):
    run_id = None
    with hub.admin() as a:
        assert a.get("/auth/whoami", headers={"x-request-id": "ep-bot.7:a_b"}).headers["x-request-id"] == "ep-bot.7:a_b"
        for bad in ("has space", "x" * 65, "semi;colon"):
            made = a.get("/auth/whoami", headers={"x-request-id": bad}).headers["x-request-id"]
            assert len(made) == 32 and made != bad
        exp = a.post("/experiments", json={"name": "e"}).json()["experiment_id"]
        run_id = a.post("/runs", json={"experiment_id": exp}).json()["info"]["run_id"]
        hot = a.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": 1}, headers={"x-request-id": "hot-1"})
        assert hot.status_code == 200 and hot.headers["x-request-id"] == "hot-1"  # the hot lane too


def test_query_access_is_answered_for_the_callers_own_token(hub):
    alice, bob = hub.user("alice"), hub.user("bob")
    _store(hub, hub.admin_token).create("bot", _config())
    grants.grant(hub.engine, "endpoint", "bot", "alice", "QUERY", actor="test")
    with hub.client(alice) as c:
        assert c.get("/endpoints/bot/query-access").json() == {"principal": "alice", "allowed": True}
        assert c.get(f"/models/{M}/query-access").status_code == 403
    with hub.client(bob) as c:
        r = c.get("/endpoints/bot/query-access", headers={"x-request-id": "bob-1"})
        assert r.status_code == 403
    denial = _audit(hub, action="QUERY_ENDPOINT")[0]
    assert (denial["actor"], denial["outcome"], denial["request_id"]) == ("bob", "DENIED", "bob-1")


def test_serving_authorizer_through_a_server_caches_and_limits_bad_tokens(hub):
    import asyncio

    from hangar.serving.auth import ServingAuthorizer

    alice = hub.user("alice")
    _store(hub, hub.admin_token).create("bot", _config())
    grants.grant(hub.engine, "endpoint", "bot", "alice", "QUERY", actor="test")
    now = [0.0]
    auth = ServingAuthorizer.through_server(hub.url, "endpoint", "bot", "QUERY", clock=lambda: now[0], failure_limit=3)

    def ask(token: str, client: str) -> str:
        try:
            return asyncio.run(auth.authorize({"authorization": f"Bearer {token}"}, None, client))
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test compares
            return type(exc).__name__

    outcomes = [ask(alice, "10.0.0.1")] + [ask(f"hgr_guess{i}", "10.0.0.9") for i in range(4)]
    outcomes.append(ask(alice, "10.0.0.2"))  # another address is not blocked
    grants.revoke(hub.engine, "endpoint", "bot", "alice", "QUERY", actor="test")
    outcomes.append(ask(alice, "10.0.0.1"))  # still the cached decision ...
    now[0] += 6
    outcomes.append(ask(alice, "10.0.0.1"))  # ... until it expires
    assert outcomes == ["alice", "UnauthenticatedError", "UnauthenticatedError", "UnauthenticatedError",
                        "TooManyRequestsError", "alice", "alice", "PermissionDeniedError"]


def _cli(env, *args, ok=True):
    done = subprocess.run([sys.executable, "-m", "hangar.cli.main", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=120)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def test_cli_manages_endpoints_through_the_server(hub, tmp_path):
    token = hub.user("owner")
    grants.grant(hub.engine, "metastore", "metastore", "owner", "ALL_PRIVILEGES", actor="test")
    env = {**os.environ, "HANGAR_TRACKING_URI": hub.url, "HANGAR_TOKEN": token, "HANGAR_HOME": str(tmp_path / "cli")}
    path = tmp_path / "ep.yaml"
    path.write_text(yaml.safe_dump({"served_entities": [{"model": f"models:/{M}@champion", "weight": 100}]}))
    assert "created endpoint bot" in _cli(env, "endpoints", "create", "bot", "--config", path).stdout
    assert "bot" in _cli(env, "endpoints", "list").stdout
    assert "revision 2" in _cli(env, "endpoints", "update", "bot", "--config", path).stdout
    shown = _cli(env, "endpoints", "get", "bot", "--json").stdout
    assert '"revision": 2' in shown and '"updated_by": "owner"' in shown
    again = _cli(env, "endpoints", "create", "bot", "--config", path, ok=False)
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    _cli(env, "endpoints", "delete", "bot")
    gone = _cli(env, "endpoints", "get", "bot", ok=False)
    assert gone.returncode == 3 and "No endpoint 'bot'" in gone.stderr
    with hub.admin() as a:
        assert a.get("/endpoints").json() == {"endpoints": []}


# -- serving processes pointed at the server ------------------------------------------------------
def _start(env, log: Path, *args) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", *args, "--port", str(port)], env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, proc, log.read_text, 90)
    return proc, base


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_endpoint_served_through_the_server_checks_callers_there_and_follows_updates(hub, tmp_path, package):
    from hangar.catalog.client import Client

    deployer, alice, bob = hub.user("deployer", "service_principal"), hub.user("alice"), hub.user("bob")
    for kind, name, privilege in [("catalog", "main", "USE_CATALOG"), ("schema", "main.default", "USE_SCHEMA"),
                                  ("registered_model", M, "EXECUTE")]:
        grants.grant(hub.engine, kind, name, "deployer", privilege, actor="test")
    env = {**os.environ, "HANGAR_TRACKING_URI": hub.url, "HANGAR_TOKEN": deployer, "HANGAR_HOME": str(tmp_path / "dh"),
           "PYTHONPATH": os.pathsep.join([ASSETS, os.environ.get("PYTHONPATH", "")])}
    path = tmp_path / "ep.yaml"
    path.write_text(yaml.safe_dump({"served_entities": [{"model": f"models:/{M}@champion"}], "alias_poll_seconds": 0.2}))
    _cli(env, "endpoints", "create", "bot", "--config", path)
    grants.grant(hub.engine, "endpoint", "bot", "alice", "QUERY", actor="test")
    log = tmp_path / "serve.log"
    proc, base = _start(env, log, "endpoints", "serve", "bot")
    body = {"inputs": ["abcd"]}
    try:
        assert httpx.post(f"{base}/invocations", json=body).status_code == 401
        assert httpx.post(f"{base}/invocations", json=body,
                          headers={"authorization": "Bearer hgr_not-a-token"}).status_code == 401
        denied = httpx.post(f"{base}/invocations", json=body,
                            headers={"authorization": f"Bearer {bob}", "x-request-id": "bob-7"})
        assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"
        ok = httpx.post(f"{base}/invocations", json=body, headers={"authorization": f"Bearer {alice}"})
        assert ok.status_code == 200 and ok.json() == {"predictions": [4]}
        assert ok.headers["x-hangar-served-by"] == f"{M}/1"
        # an alias move and a config update, both made through the server, reach the running endpoint
        c = Client(f"sqlite:///{tmp_path / 'server.db'}", str(tmp_path / "artifacts"), actor="admin")
        c.register_model(package, M)
        c.set_alias(M, "champion", 2)
        c.store.close()
        hit = lambda: httpx.post(f"{base}/invocations", json=body,  # noqa: E731
                                 headers={"authorization": f"Bearer {alice}"}).headers.get("x-hangar-served-by")
        _until(lambda: hit() == f"{M}/2", what="the alias move")
        path.write_text(yaml.safe_dump({"served_entities": [{"model": f"models:/{M}/1"}], "alias_poll_seconds": 0.2}))
        _cli(env, "endpoints", "update", "bot", "--config", path)
        _until(lambda: hit() == f"{M}/1", what="the config update")
        _cli(env, "endpoints", "delete", "bot")
        _until(lambda: httpx.post(f"{base}/invocations", json=body,
                                  headers={"authorization": f"Bearer {alice}"}).status_code in (401, 403, 404),
               what="the deletion")
    finally:
        stop(proc, 60)
    text = log.read_text()
    assert "Traceback" not in text and alice not in text and bob not in text and deployer not in text
    denial = _audit(hub, action="QUERY_ENDPOINT")[0]
    assert (denial["actor"], denial["request_id"]) == ("bob", "bob-7")
    with hub.admin() as a:
        lineage = a.get("/lineage", params={"entity": "endpoint", "entity_id": "bot", "direction": "upstream"}).json()
    assert {f"{M}/1", f"{M}/2"} <= {n["id"] for n in lineage["nodes"]}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_hangar_serve_auth_through_the_server_needs_execute(hub, tmp_path):
    alice, bob = hub.user("alice"), hub.user("bob")
    for kind, name, privilege in [("catalog", "main", "USE_CATALOG"), ("schema", "main.default", "USE_SCHEMA"),
                                  ("registered_model", M, "EXECUTE")]:
        grants.grant(hub.engine, kind, name, "alice", privilege, actor="test")
    env = {**os.environ, "HANGAR_TRACKING_URI": hub.url, "HANGAR_TOKEN": alice, "HANGAR_HOME": str(tmp_path / "sh"),
           "PYTHONPATH": os.pathsep.join([ASSETS, os.environ.get("PYTHONPATH", "")])}
    proc, base = _start(env, tmp_path / "serve.log", "serve", f"models:/{M}@champion", "--auth")
    try:
        body = {"inputs": ["ab"]}
        ok = httpx.post(f"{base}/invocations", json=body, headers={"authorization": f"Bearer {alice}"})
        assert ok.status_code == 200 and ok.json() == {"predictions": [2]}
        denied = httpx.post(f"{base}/invocations", json=body, headers={"authorization": f"Bearer {bob}"})
        assert denied.status_code == 403
    finally:
        stop(proc, 60)
    assert _audit(hub, action="QUERY_REGISTERED_MODEL")[0]["actor"] == "bob"


def test_client_grants_through_the_server_and_on_the_store_itself(hub, tmp_path, monkeypatch):
    import hangar

    alice = hub.user("alice")
    _store(hub, hub.admin_token).create("bot", _config())
    monkeypatch.setenv("HANGAR_TOKEN", hub.admin_token)
    admin = hangar.Client(hub.url)
    made = admin.grant("endpoint", "bot", "alice", "query")
    assert (made.principal, made.privilege, made.granted_by) == ("alice", "QUERY", "admin")
    assert [(g.principal, g.privilege) for g in admin.list_grants("endpoint", "bot")] == [("alice", "QUERY")]
    monkeypatch.setenv("HANGAR_TOKEN", alice)
    mine = hangar.Client(hub.url)
    assert [(g.securable, g.privilege) for g in mine.list_grants()] == [("bot", "QUERY")]
    with pytest.raises(PermissionDeniedError):  # granting needs MANAGE on the securable
        mine.grant("endpoint", "bot", "alice", "MANAGE")
    admin.revoke("endpoint", "bot", "alice", "QUERY")
    assert mine.list_grants() == []
    from hangar.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        admin.list_grants("endpoint")
    local = hangar.Client(f"sqlite:///{tmp_path / 'server.db'}", str(tmp_path / "artifacts"), actor="admin")
    local.grant("registered_model", M, "alice", "EXECUTE")
    assert [g.principal for g in local.list_grants("registered_model", M)] == ["alice"]
    assert _audit(hub, action="GRANT")[0]["securable"] == M
    local.store.close()
