"""Authentication, list filtering, hostile input and the server process (real servers, real stores)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import httpx
import pytest
from server_fixtures import start_hub
from sqlalchemy import update

from hangar.governance import grants, tokens
from hangar.store import schema as t


@pytest.fixture
def hub(store_uri, tmp_path):
    server, hub = start_hub(store_uri, tmp_path)
    with server:
        yield hub


def test_missing_malformed_unknown_expired_and_revoked_tokens_get_the_same_401(hub):
    tok = hub.user("u1")
    with hub.admin() as a:
        made = a.post("/principals/u1/tokens", json={"name": "short"}).json()
    with hub.engine.begin() as conn:
        conn.execute(update(t.tokens).where(t.tokens.c.id == made["info"]["id"]).values(expires_at=1))
    revoked = tokens.create(hub.engine, "u1", "gone", actor="t")
    with hub.client(revoked.token) as c:
        assert c.delete(f"/auth/tokens/{revoked.info.id}").status_code == 200
    bodies = set()
    for headers in [{}, {"Authorization": "Basic dTE6cHc="}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer hgr_" + "A" * 43}, {"Authorization": "Bearer not-a-token"},
                    {"Authorization": f"Bearer {made['token']}"}, {"Authorization": f"Bearer {revoked.token}"},
                    {"Authorization": f"Bearer {tok}'; DROP TABLE tokens; --"}]:
        r = httpx.get(hub.url + "/api/v1/catalogs", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", headers
        bodies.add(r.text)
    assert len(bodies) == 1 and "UNAUTHENTICATED" in bodies.pop()
    with hub.client(tok) as c:
        assert c.get("/auth/whoami").json()["name"] == "u1"
    assert httpx.get(hub.url + "/health").status_code == 200 and httpx.get(hub.url + "/ready").json() == {"status": "ready"}


def test_cors_is_closed_by_default(hub):
    origin = {"Origin": "https://evil.example"}
    r = httpx.get(hub.url + "/api/v1/catalogs", headers={**origin, "Authorization": f"Bearer {hub.admin_token}"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = httpx.options(hub.url + "/api/v1/catalogs",
                        headers={**origin, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers and pre.status_code in (401, 405)


def test_lists_show_only_what_the_principal_may_see(hub):
    bob = hub.user("bob")
    with hub.admin() as a:
        for path, body in [("/catalogs", {"name": "open"}), ("/catalogs", {"name": "secret"}),
                           ("/schemas", {"name": "open.s"}), ("/schemas", {"name": "open.hidden"}),
                           ("/schemas", {"name": "secret.s"}), ("/models", {"name": "open.s.shared"}),
                           ("/models", {"name": "open.s.private"}), ("/models", {"name": "secret.s.m"}),
                           ("/models", {"name": "open.hidden.m"})]:
            assert a.post(path, json=body).status_code == 201, path
        for kind, name, priv in [("catalog", "open", "USE_CATALOG"), ("schema", "open.s", "USE_SCHEMA"),
                                 ("registered_model", "open.s.shared", "EXECUTE"),
                                 ("registered_model", "open.hidden.m", "EXECUTE")]:
            assert a.post(f"/grants/{kind}/{name}", json={"principal": "bob", "privilege": priv}).status_code == 201
        admin_exp = a.post("/experiments", json={"name": "admins"}).json()["experiment_id"]
        a.post("/runs", json={"experiment_id": admin_exp})
    with hub.client(bob) as b:
        assert [c["name"] for c in b.get("/catalogs").json()["catalogs"]] == ["open"]
        assert [s["full_name"] for s in b.get("/catalogs/open/schemas").json()["schemas"]] == ["open.s"]
        assert [m["full_name"] for m in b.get("/models").json()["registered_models"]] == ["open.s.shared"]
        assert b.get("/models", params={"catalog": "secret"}).json()["registered_models"] == []
        mine = b.post("/experiments", json={"name": "bobs"}).json()["experiment_id"]
        assert b.post("/runs", json={"experiment_id": mine}).status_code == 201
        assert [e["name"] for e in b.post("/experiments/search", json={}).json()["experiments"]] == ["bobs"]
        runs = b.post("/runs/search", json={"experiment_ids": [mine, admin_exp, "0"]}).json()["runs"]
        assert {r["info"]["experiment_id"] for r in runs} == {mine}
        assert b.get("/catalogs/secret/schemas").status_code == 403
        b.get("/models/secret.s.m")  # denied, and audited
        records = b.get("/audit").json()["records"]
        assert records == []  # bob MANAGEs nothing: he sees no audit record, not even his own denial
    with hub.admin() as a:
        denied = a.get("/audit", params={"securable": "secret.s.m"}).json()["records"]
        assert denied[0]["outcome"] == "DENIED" and denied[0]["actor"] == "bob"
        grants.grant(hub.engine, "registered_model", "open.s.shared", "bob", "MANAGE", actor="t")
    with hub.client(bob) as b:
        assert {r["securable"] for r in b.get("/audit").json()["records"]} == {"open.s.shared"}


@pytest.mark.parametrize("flt", [
    "name = 'x' OR 1=1 --", "name LIKE '%'; DROP TABLE registered_models; --", "tags.k = 'a' UNION SELECT * FROM tokens",
    "params.lr = '1'); DELETE FROM runs; --", "metrics.acc > 0 OR 1=1",
])
def test_sql_shaped_filters_are_refused_or_harmless(hub, flt):
    bob = hub.user("bob")
    with hub.admin() as a:
        a.post("/catalogs", json={"name": "c"})
        a.post("/schemas", json={"name": "c.s"})
        a.post("/models", json={"name": "c.s.m"})
        exp = a.post("/experiments", json={"name": "e"}).json()["experiment_id"]
        a.post("/runs", json={"experiment_id": exp})
    with hub.client(bob) as b:
        for resp in (b.get("/models", params={"filter": flt}), b.get("/models", params={"name_like": flt}),
                     b.post("/runs/search", json={"experiment_ids": [exp], "filter": flt}),
                     b.post("/experiments/search", json={"filter": flt})):
            assert resp.status_code in (200, 400), resp.text
            if resp.status_code == 200:
                body = resp.json()
                assert all(not v for k, v in body.items() if k != "next_page_token"), body  # bob may see nothing
    with hub.admin() as a:
        assert [m["full_name"] for m in a.get("/models").json()["registered_models"]] == ["c.s.m"]
        assert len(a.post("/runs/search", json={"experiment_ids": [exp]}).json()["runs"]) == 1


def test_no_auth_is_refused_on_a_public_address(tmp_path):
    env = {**os.environ, "HANGAR_HOME": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "hangar.cli.main", "server", "--host", "0.0.0.0", "--no-auth"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1 and "Error [INVALID_PARAMETER_VALUE]" in proc.stderr and "--insecure" in proc.stderr
    assert "Traceback" not in proc.stderr
    from hangar.governance.authn import check_auth_choice

    check_auth_choice("0.0.0.0", True, True)
    check_auth_choice("127.0.0.1", True, False)
    check_auth_choice("::1", True, False)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path, store, *extra):
    port = _free_port()
    env = {**os.environ, "HANGAR_HOME": str(tmp_path / "home"), "PYTHONPATH": os.pathsep.join(sys.path)}
    log = open(tmp_path / f"server-{port}.log", "w")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "server", "--port", str(port), "--store", store,
                             "--artifacts", str(tmp_path / "art"), *extra], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return proc, url, time.monotonic() - started, tmp_path / f"server-{port}.log"
        except httpx.TransportError:
            pass
        assert proc.poll() is None, (tmp_path / f"server-{port}.log").read_text()
        assert time.monotonic() - started < 60
        time.sleep(0.02)


def _stop(proc):
    proc.terminate()
    assert proc.wait(20) == 0


def test_server_process_bootstraps_an_admin_whose_token_never_reaches_the_log(tmp_path, store_uri):
    proc, url, _, log = _start(tmp_path, store_uri, "--workers", "2")
    try:
        path = tmp_path / "home" / "server" / "bootstrap-admin-token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = path.read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url + "/api/v1/auth/whoami", headers=auth).json()["name"] == "admin"
        created = httpx.post(url + "/api/v1/auth/tokens", headers=auth, json={"name": "x"}).json()
        made = created["token"]
        httpx.get(url + "/api/v1/catalogs", headers={"Authorization": f"Bearer {made}x"})
        assert httpx.get(url + "/api/v1/openapi.json").json()["paths"]
        # hot writes on two workers (one connection each: requests spread over both processes), then a
        # revocation made through one worker holds on the very next write, wherever it lands
        exp = httpx.post(url + "/api/v1/experiments", headers=auth, json={"name": "w"}).json()["experiment_id"]
        run_id = httpx.post(url + "/api/v1/runs", headers=auth, json={"experiment_id": exp}).json()["info"]["run_id"]
        clients = [httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {made}"}) for _ in range(4)]
        try:
            for i in range(5):
                for c in clients:
                    assert c.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": i}).status_code == 200
            token_id = created["info"]["id"]
            assert httpx.delete(url + f"/api/v1/auth/tokens/{token_id}", headers=auth).status_code == 200
            for c in clients:
                assert c.post(f"/runs/{run_id}/metrics", json={"key": "m", "value": 9}).status_code == 401
        finally:
            for c in clients:
                c.close()
    finally:
        _stop(proc)
    text = log.read_text()
    assert str(path) in text and token not in text and made not in text
    # a later start on the migrated store: no new admin, the file is not rewritten, ready quickly
    proc, url, seconds, log = _start(tmp_path, store_uri)
    try:
        assert path.read_text().strip() == token and "Created the administrator" not in log.read_text()
        print(f"spawn to /ready on a migrated store: {seconds:.2f} s")
        assert seconds < 10
    finally:
        _stop(proc)


def test_secrets_never_reach_the_server_log_even_at_debug_level(tmp_path, store_uri):
    import hashlib

    from hangar.tracking.rest_store import RestTrackingStore

    proc, url, _, log = _start(tmp_path, store_uri, "--log-level", "debug")
    try:
        admin = (tmp_path / "home" / "server" / "bootstrap-admin-token").read_text().strip()
        auth = {"Authorization": f"Bearer {admin}"}
        made = httpx.post(url + "/api/v1/auth/tokens", headers=auth, json={"name": "x"}).json()["token"]
        store = RestTrackingStore(url, made)  # the client's lean path and the server's, with a token
        try:
            run = store.create_run(store.create_experiment("e")).info.run_id
            store.log_metric(run, "m", 1.0)
            store.log_batch(run, params={"p": "1"})
        finally:
            store.close()
        assert httpx.post(f"{url}/api/v1/runs/{run}/metrics", json={"key": "m", "value": 1},
                          headers={"Authorization": f"Bearer {made}x"}).status_code == 401
        assert httpx.get(url + "/api/v1/auth/whoami", headers={"Authorization": f"Bearer {admin[:-2]}"}).status_code == 401
        assert httpx.post(f"{url}/api/v1/runs/{run}/metrics", content=b"{bad", headers=auth).status_code == 400
    finally:
        _stop(proc)
    text = log.read_text()
    assert "GET /api/v1/auth/whoami" in text or "POST /api/v1/runs" in text  # the access log was on
    for secret in (admin, made):
        assert secret not in text and secret[:16] not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text
    assert "Bearer" not in text
