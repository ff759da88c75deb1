"""The Python client through a real server: artifacts (streamed, Range, size limit, traversal),
loading registered models with checksum verification, failed-token rate limiting, SQL-shaped
filters, and the credentials file. On SQLite, auth on."""

from __future__ import annotations

import http.client
import os
import sys
from pathlib import Path

import httpx
import pytest
from server_fixtures import InThreadServer

from hangar.errors import (
    ConflictError,
    CorruptPackageError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
    TooManyRequestsError,
    UnauthenticatedError,
)

sys.path.insert(0, str(Path(__file__).parent / "assets"))


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A server with small limits: 64 KiB per upload, 5 bad tokens per minute per address."""
    from hangar.server.bootstrap import bootstrap
    from hangar.server.config import ServerConfig

    config = ServerConfig(store_uri=f"sqlite:///{tmp_path / 'server.db'}", artifact_root=str(tmp_path / "artifacts"),
                          home=str(tmp_path / "server-home"), max_upload_bytes=64 * 1024, auth_failure_limit=5)
    with InThreadServer(config) as server:
        token = bootstrap(server.app.state.services.engine, config.home_path).read_text().strip()
        monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "client-home"))
        monkeypatch.setenv("HANGAR_TOKEN", token)
        server.token = token
        yield server


@pytest.fixture
def client(hub):
    from hangar.catalog.client import Client

    c = Client(hub.url)
    yield c
    c.store.close()


def _raw(hub, method: str, path: str, body: bytes | None = None) -> int:
    """A request whose path goes on the wire exactly as written (no client-side normalisation)."""
    host, port = hub.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {hub.token}"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_artifacts_round_trip_streamed(client, tmp_path):
    run = client.create_run().info.run_id
    data = os.urandom(60 * 1024)
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "blob.bin").write_bytes(data)
    (tmp_path / "src" / "sub" / "note.txt").write_text("hi")
    client.log_artifacts(run, tmp_path / "src", "folder")
    client.log_text(run, "hello", "greeting.txt")
    client.log_dict(run, {"a": 1}, "conf/params.json")
    assert [f.path for f in client.list_artifacts(run)] == ["conf", "folder", "greeting.txt"]
    assert [(f.path, f.size) for f in client.list_artifacts(run, "folder")] == [("folder/blob.bin", len(data)),
                                                                               ("folder/sub", None)]
    out = client.download_artifacts(run, "folder", tmp_path / "dst")
    assert (out / "blob.bin").read_bytes() == data and (out / "sub" / "note.txt").read_text() == "hi"
    assert client.artifact_repository(run).read_text("greeting.txt") == "hello"
    client.artifact_repository(run).delete_artifacts("greeting.txt")
    assert [f.path for f in client.list_artifacts(run)] == ["conf", "folder"]


def test_downloads_answer_ranges_206_and_416(client, hub):
    run = client.create_run().info.run_id
    data = bytes(range(256)) * 40
    client.artifact_repository(run).write_bytes("d.bin", data)
    url = f"{hub.url}/api/v1/artifacts/runs/{run}/files/d.bin"
    auth = {"Authorization": f"Bearer {hub.token}"}
    full = httpx.get(url, headers=auth)
    assert full.status_code == 200 and full.content == data and full.headers["accept-ranges"] == "bytes"
    for header, expected in [("bytes=10-19", data[10:20]), ("bytes=-5", data[-5:]), ("bytes=10000-", data[10000:]),
                             ("bytes=0-99999", data)]:
        r = httpx.get(url, headers={**auth, "Range": header})
        assert r.status_code == 206 and r.content == expected, header
        start = len(data) - 5 if header == "bytes=-5" else int(header[6:].split("-")[0])
        assert r.headers["content-range"] == f"bytes {start}-{start + len(expected) - 1}/{len(data)}"
    first = httpx.get(url, headers={**auth, "Range": "bytes=0-4095"}).content  # a download resumed where it stopped
    assert first + httpx.get(url, headers={**auth, "Range": f"bytes={len(first)}-"}).content == data
    for bad in ("bytes=10240-", "bytes=20-10", "bytes=abc", "bytes=-0"):
        r = httpx.get(url, headers={**auth, "Range": bad})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}", bad


def test_oversized_uploads_get_413_and_store_nothing(client, hub, tmp_path):
    run = client.create_run().info.run_id
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(64 * 1024 + 1))
    with pytest.raises(PayloadTooLargeError):
        client.log_artifact(run, big)
    url = f"{hub.url}/api/v1/artifacts/runs/{run}/files/chunked.bin"

    def chunks():  # no Content-Length: the server counts as the body streams in
        for _ in range(100):
            yield b"x" * 1024

    r = httpx.put(url, content=chunks(), headers={"Authorization": f"Bearer {hub.token}"})
    assert r.status_code == 413 and r.json()["error_code"] == "PAYLOAD_TOO_LARGE"
    assert client.list_artifacts(run) == []
    assert not list((tmp_path / "server-home" / "server" / "uploads").iterdir())


@pytest.mark.parametrize("path", ["../../escape.txt", "%2e%2e/%2e%2e/escape.txt", "%252e%252e/escape.txt",
                                  "a/..%2F..%2Fescape.txt", "..%5Cescape.txt", "a\\..\\escape.txt", "/etc/passwd",
                                  "%2Fetc%2Fpasswd"])
def test_artifact_paths_cannot_escape(client, hub, tmp_path, path):
    run = client.create_run().info.run_id
    base = f"/api/v1/artifacts/runs/{run}/files/"
    assert _raw(hub, "PUT", base + path, b"owned") in (400, 404)
    assert _raw(hub, "GET", base + path) in (400, 404)
    assert _raw(hub, "GET", f"/api/v1/artifacts/runs/{run}/list?path={path}") in (400, 404)
    assert not [p for p in tmp_path.rglob("escape.txt")]
    with pytest.raises(InvalidArgumentError):
        client.artifact_repository(run).write_bytes(path.replace("%2F", "/"), b"owned")


def _delete(hub, path: str, query: str = "") -> httpx.Response:
    return httpx.delete(f"{hub.url}/api/v1/artifacts/{path}{query}", headers={"Authorization": f"Bearer {hub.token}"})


def test_deleting_run_artifacts_through_the_server(client, hub):
    """The contract of ``delete_artifacts`` (a file, a folder with everything in it, 404 or ``missing_ok`` for a
    missing path, the whole root), then the REST answers themselves."""
    from test_artifacts import check_delete_contract

    from hangar.artifacts.http_repo import HttpArtifactRepository

    run = client.create_run().info.run_id
    repo = client.artifact_repository(run)
    check_delete_contract(repo)
    with pytest.raises(NotFoundError, match="'keep.txt/x'"):  # below a file: nothing is there either
        repo.delete_artifacts("keep.txt/x")
    repo.write_text("folder/inner/x.txt", "x")
    sub = HttpArtifactRepository(client.store.server, repo.base, "folder")  # rooted at a folder: runs:/<id>/folder
    sub.delete_artifacts("inner/x.txt")
    assert repo.exists("folder/inner") and not repo.exists("folder/inner/x.txt")
    sub.delete_artifacts()
    assert not repo.exists("folder")
    repo.delete_artifacts()
    assert repo.list_artifacts() == [] and not repo.exists("keep.txt")

    repo.write_text("r/one.txt", "1")
    r = _delete(hub, f"runs/{run}/files/r/one.txt")
    assert r.status_code == 200 and r.json() == {"deleted": "r/one.txt"}
    r = _delete(hub, f"runs/{run}/files/r/one.txt")
    assert r.status_code == 404 and r.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                                 "message": "No artifact at 'r/one.txt'"}
    assert _delete(hub, f"runs/{run}/files/r/one.txt", "?missing_ok=true").json() == {"deleted": None}
    repo.write_text("r/two.txt", "2")
    r = _delete(hub, f"runs/{run}/files/")  # the root itself cannot be named: a client deletes its entries one by one
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert [_raw(hub, "DELETE", f"/api/v1/artifacts/runs/{run}/files/{root}") for root in (".", "./", "%2e", "//")] \
        == [400] * 4
    assert repo.read_text("r/two.txt") == "2"
    r = _delete(hub, "runs/no-such-run/files/r/two.txt", "?missing_ok=true")  # a missing run is never "missing_ok"
    assert r.status_code == 404 and "no-such-run" in r.json()["message"]


def test_deleting_artifacts_with_the_tracking_uri_of_a_server(hub, monkeypatch):
    """The user-level path: ``HANGAR_TRACKING_URI=http://...``, then the client of the fluent API."""
    from hangar.tracking import fluent

    monkeypatch.setenv("HANGAR_TRACKING_URI", hub.url)
    fluent.set_tracking_uri(None)
    try:
        with fluent.start_run() as active:
            fluent.log_text("draft", "notes/draft.txt")
            fluent.log_text("final", "notes/final.txt")
        c = fluent.client()
        run = active.info.run_id
        assert c.artifact_repository(run).uri.startswith(hub.url)  # through the server, not the store
        c.artifact_repository(run).delete_artifacts("notes/draft.txt")
        assert [f.path for f in c.list_artifacts(run, "notes")] == ["notes/final.txt"]
        with pytest.raises(NotFoundError, match="notes/draft.txt"):
            c.artifact_repository(run).delete_artifacts("notes/draft.txt")
        c.artifact_repository(run).delete_artifacts("notes")
        assert c.list_artifacts(run) == []
    finally:
        fluent.set_tracking_uri(None)


def test_only_pending_logged_models_and_versions_lose_files(client, hub, tmp_path):
    """A READY logged model or version is immutable: deleting its files is refused (409) and they stay.
    While PENDING, its files can be deleted, a folder with everything in it."""
    from hinted_model import HintedLen

    import hangar.pyfunc as hp
    from hangar.tracking.logged_models import log_model

    run = client.create_run().info.run_id
    ready = log_model(hp.save_model, "lm", HintedLen(), run_id=run, client=client)
    lm_repo = client.store.logged_model_artifacts(ready.model_id)
    with pytest.raises(ConflictError, match="READY; its files can no longer change"):
        lm_repo.delete_artifacts("MLmodel")
    r = _delete(hub, f"logged-models/{ready.model_id}/files/MLmodel")
    assert r.status_code == 409 and r.json()["error_code"] == "INVALID_STATE"
    assert "flavors" in lm_repo.read_text("MLmodel")

    pending = client.store.create_logged_model(client.get_run(run).info.experiment_id, "draft")
    draft = client.store.logged_model_artifacts(pending.model_id)
    for rel in ["MLmodel", "data/a.bin", "data/b/c.bin"]:
        draft.write_text(rel, rel)
    draft.delete_artifacts("data")
    draft.delete_artifacts("MLmodel")
    assert draft.list_artifacts() == []

    pkg = hp.save_model(tmp_path / "pkg", HintedLen(), input_example=["abc"])
    mv = client.register_model(pkg, "frozen")
    files = client.registry._files(mv.full_name, mv.version)
    with pytest.raises(ConflictError, match="delete the version instead"):
        files.delete_artifacts("MLmodel")
    r = _delete(hub, f"models/{mv.full_name}/versions/{mv.version}/files/MLmodel", "?missing_ok=true")
    assert r.status_code == 409 and "hangar versions delete main.default.frozen 1" in r.json()["message"]
    assert "flavors" in files.read_text("MLmodel")

    with httpx.Client(base_url=hub.url + "/api/v1", headers={"Authorization": f"Bearer {hub.token}"}) as http:
        made = http.post(f"/models/{mv.full_name}/versions", json={"source": str(pkg)}).json()
    assert made["status"] == "PENDING"
    up = client.registry._files(mv.full_name, made["version"])
    for rel in ["MLmodel", "data/a.bin", "data/b/c.bin"]:
        up.write_text(rel, rel)
    stored = Path(made["storage_location"].removeprefix("file://"))
    up.delete_artifacts("data/b")
    assert sorted(p.relative_to(stored).as_posix() for p in stored.rglob("*")) == ["MLmodel", "data", "data/a.bin"]
    up.delete_artifacts("data")
    up.delete_artifacts("data", missing_ok=True)
    assert sorted(p.name for p in stored.iterdir()) == ["MLmodel"]


def test_a_reader_cannot_delete_artifacts(client, hub):
    """READ on the experiment is not EDIT: 403, the file stays, and the denial (only) is audited."""
    from hangar.governance import grants, principals, tokens

    engine = hub.app.state.services.engine
    run = client.create_run().info.run_id
    client.log_text(run, "keep me", "keep.txt")
    principals.create(engine, "viewer", "user", actor="t")
    grants.grant(engine, "experiment", "0", "viewer", "READ", actor="t")
    viewer = tokens.create(engine, "viewer", "t", actor="t").token
    with httpx.Client(base_url=hub.url + "/api/v1", headers={"Authorization": f"Bearer {viewer}"}) as http:
        assert http.get(f"/artifacts/runs/{run}/files/keep.txt").content == b"keep me"
        r = http.delete(f"/artifacts/runs/{run}/files/keep.txt")
    assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
    assert client.artifact_repository(run).read_text("keep.txt") == "keep me"
    client.artifact_repository(run).delete_artifacts("keep.txt")  # a tracking write: not audited, as every other
    assert [(a.actor, a.outcome) for a in client.list_audit(action="DELETE_RUN_ARTIFACT")] == [("viewer", "DENIED")]


@pytest.mark.parametrize("path", ["../victim.txt", "../../victim.txt", "%2e%2e/victim.txt", "%252e%252e/victim.txt",
                                  "a/..%2F..%2Fvictim.txt", "..%5Cvictim.txt", "a\\..\\..\\victim.txt",
                                  "ABS", "ABS-ENCODED", "%2e%2e", ".."])
def test_deletes_cannot_escape(client, hub, tmp_path, path):
    """Every file a traversal could name (beside the run's folder, above it, by absolute path) survives it."""
    from urllib.parse import quote

    run = client.create_run().info.run_id
    repo = client.artifact_repository(run)
    repo.write_text("mine.txt", "mine")
    root = Path(hub.app.state.services.tracking.run_artifacts(run).root)
    victims = [root.parent / "victim.txt", root.parent.parent / "victim.txt", tmp_path / "victim.txt"]
    for v in victims:
        v.write_text("precious")
    path = {"ABS": str(tmp_path / "victim.txt"), "ABS-ENCODED": quote(str(tmp_path / "victim.txt"), safe="")}.get(path, path)
    assert _raw(hub, "DELETE", f"/api/v1/artifacts/runs/{run}/files/{path}") in (400, 404)
    assert _raw(hub, "DELETE", f"/api/v1/artifacts/runs/{run}/files/{path}?missing_ok=true") in (400, 404)
    with pytest.raises(InvalidArgumentError):
        repo.delete_artifacts(path.replace("%2F", "/"), missing_ok=True)
    assert all(v.read_text() == "precious" for v in victims) and repo.read_text("mine.txt") == "mine"
    assert root.parent.exists()


def test_load_model_through_the_server_verifies_checksums(client, hub, tmp_path, monkeypatch):
    from hinted_model import HintedLen

    import hangar.pyfunc as hp
    from hangar.tracking import fluent

    pkg = hp.save_model(tmp_path / "pkg", HintedLen(), input_example=["abc"])
    mv = client.register_model(pkg, "assistant")
    client.set_alias("assistant", "champion", 1)
    assert mv.status == "READY" and set(mv.checksums) >= {"python_model.pkl"}
    monkeypatch.setenv("HANGAR_TRACKING_URI", hub.url)
    fluent.set_tracking_uri(None)
    assert hp.load_model("models:/main.default.assistant@champion").predict(["abcd"]) == [4]
    with pytest.raises(ConflictError, match="immutable"):
        client.registry._files(mv.full_name, 1).write_bytes("python_model.pkl", b"evil")
    stored = tmp_path / "artifacts" / "registry" / "main" / "default" / "assistant" / "1" / "python_model.pkl"
    stored.write_bytes(stored.read_bytes() + b"tampered")
    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "fresh-home"))  # an empty cache: the download is checked
    fluent.set_tracking_uri(None)
    with pytest.raises(CorruptPackageError, match="python_model.pkl"):
        hp.load_model("models:/assistant/1")
    fluent.set_tracking_uri(None)


def test_failed_tokens_are_rate_limited_per_address(hub):
    services = hub.app.state.services
    bad = {"Authorization": "Bearer hgr_" + "A" * 43}
    with httpx.Client(base_url=hub.url + "/api/v1") as http:
        assert [http.get("/catalogs", headers=bad).status_code for _ in range(5)] == [401] * 5
        r = http.get("/catalogs", headers=bad)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and r.json()["error_code"] == "RATE_LIMITED"
        good = http.get("/catalogs", headers={"Authorization": f"Bearer {hub.token}"})
        assert good.status_code == 429  # the address is blocked, whatever it sends, until the window passes
        assert http.get("/catalogs").status_code == 429 and httpx.get(hub.url + "/health").status_code == 200
    assert services.limiter.failures == 5 and services.limiter.blocked == 3
    from hangar.tracking.rest_store import RestTrackingStore

    with pytest.raises(TooManyRequestsError):
        RestTrackingStore(hub.url, "wrong").get_experiment("0")


def test_rate_limit_window_passes():
    from hangar.governance.auth_failures import FailedAuthLimiter

    now = [0.0]
    limiter = FailedAuthLimiter(limit=2, window=10, clock=lambda: now[0])
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") == 10 and limiter.retry_after("b") is None
    now[0] = 10.5
    assert limiter.retry_after("a") is None


@pytest.mark.parametrize("flt", ["params.x = 'a' OR 1=1", "params.x = 'a'; DROP TABLE runs; --",
                                 "tags.\"x\" = '' OR ''='", "metrics.m > 0 UNION SELECT * FROM tokens"])
def test_sql_shaped_filters_through_the_client_are_refused_or_harmless(client, flt):
    run = client.create_run().info.run_id
    client.log_param(run, "x", "b")
    try:
        runs, _ = client.search_runs("0", filter_string=flt)
        assert runs == []
    except InvalidArgumentError:
        pass
    assert client.search_registered_models(name_like="%' OR '1'='1") == []
    with pytest.raises(InvalidArgumentError):
        client.search_registered_models(filter_string="name = 'x' OR 1=1; DROP TABLE registered_models")
    assert client.get_run(run).data.params == {"x": "b"}


def test_token_from_the_credentials_file(hub, monkeypatch, tmp_path):
    from hangar.catalog.client import Client
    from hangar.config import Settings
    from hangar.remote import write_credentials

    monkeypatch.delenv("HANGAR_TOKEN")
    with pytest.raises(UnauthenticatedError):
        Client(hub.url).list_catalogs()
    write_credentials(Settings.from_env(), hub.url, hub.token)
    assert [c.name for c in Client(hub.url).list_catalogs()] == ["main"]


def test_remembered_tokens_and_grants_follow_every_change_at_once(hub, client):
    """The server memoises token lookups and grants while the audit log's head stays put; any
    revocation (even one written straight to the store) takes effect on the very next request."""
    from hangar.governance import grants, principals, tokens

    engine = hub.app.state.services.engine
    principals.create(engine, "carol", "user", actor="t")
    made = tokens.create(engine, "carol", "t", actor="t")
    client.create_registered_model("main.default.m")
    for kind, name, privilege in [("catalog", "main", "USE_CATALOG"), ("schema", "main.default", "USE_SCHEMA"),
                                  ("registered_model", "main.default.m", "EXECUTE")]:
        grants.grant(engine, kind, name, "carol", privilege, actor="t")
    with httpx.Client(base_url=hub.url + "/api/v1", headers={"Authorization": f"Bearer {made.token}"}) as http:
        assert [http.get("/models/main.default.m").status_code for _ in range(3)] == [200] * 3
        grants.revoke(engine, "registered_model", "main.default.m", "carol", "EXECUTE", actor="t")
        assert http.get("/models/main.default.m").status_code == 403
        grants.grant(engine, "registered_model", "main.default.m", "carol", "EXECUTE", actor="t")
        assert http.get("/models/main.default.m").status_code == 200
        tokens.revoke(engine, made.info.id, actor="t")
        assert http.get("/models/main.default.m").status_code == 401


def test_a_file_changed_in_storage_with_its_manifest_entry_is_refused_locally_and_through_the_server(
        client, hub, tmp_path, monkeypatch):
    """The trust model's claim: the checksums the server recorded at finalize decide, not the stored manifest."""
    import hashlib

    import yaml
    from hinted_model import HintedLen

    import hangar.pyfunc as hp
    from hangar.catalog.store import SqlRegistry
    from hangar.tracking import fluent

    pkg = hp.save_model(tmp_path / "pkg", HintedLen(), input_example=["abc"])
    client.register_model(pkg, "guarded")
    folder = tmp_path / "artifacts" / "registry" / "main" / "default" / "guarded" / "1"
    evil = (folder / "python_model.pkl").read_bytes() + b"tampered"
    (folder / "python_model.pkl").write_bytes(evil)
    manifest = yaml.safe_load((folder / "MLmodel").read_text())
    manifest["checksums"]["python_model.pkl"] = {"sha256": hashlib.sha256(evil).hexdigest(), "size": len(evil)}
    (folder / "MLmodel").write_text(yaml.safe_dump(manifest))
    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "fresh-home"))
    monkeypatch.setenv("HANGAR_TRACKING_URI", hub.url)
    fluent.set_tracking_uri(None)
    try:
        with pytest.raises(CorruptPackageError, match="python_model.pkl"):
            hp.load_model("models:/guarded/1")
    finally:
        fluent.set_tracking_uri(None)
    local = SqlRegistry(hub.app.state.services.tracking, actor="test", cache_dir=tmp_path / "cache")
    with pytest.raises(CorruptPackageError, match="recorded at registration"):
        local.resolve("models:/main.default.guarded/1")


def test_a_batch_job_records_its_run_and_lineage_through_the_server(hub, tmp_path, monkeypatch):
    """HANGAR_TRACKING_URI=http://...: the job's run goes through the server, and so do its three lineage
    edges (input table → job, version → job, job → output table), visible through GET /lineage."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import hangar
    import hangar.batch as hb
    import hangar.pyfunc as hp
    from hangar.tracking import fluent

    monkeypatch.setenv("HANGAR_TRACKING_URI", hub.url)
    fluent.set_tracking_uri(hub.url)
    try:
        pkg = hp.save_model(tmp_path / "len", lambda df: df["text"].str.len(), input_example={"text": ["a"]})
        mv = hangar.register_model(str(pkg), "main.default.batch_len")
        pq.write_table(pa.table({"text": ["a", "bb", "ccc"]}), tmp_path / "in.parquet")
        result = hb.run(f"models:/main.default.batch_len/{mv.version}", tmp_path / "in.parquet", tmp_path / "out",
                        workers=1)
        assert (result.rows, result.failed) == (3, 0)
        run = fluent.client().get_run(result.run_id)
        assert run.info.status == "FINISHED" and run.data.metrics["rows"] == 3
    finally:
        fluent.set_tracking_uri(None)
    job = f"batch_job:{result.run_id}"
    with httpx.Client(base_url=hub.url + "/api/v1", headers={"Authorization": f"Bearer {hub.token}"}) as http:
        up = http.get("/lineage", params={"entity": "batch_job", "entity_id": result.run_id})
        down = http.get("/lineage", params={"entity": "batch_job", "entity_id": result.run_id,
                                            "direction": "downstream"})
    assert up.status_code == 200 and down.status_code == 200, (up.text, down.text)
    edges = {(e["src"], e["dst"]) for e in up.json()["edges"] + down.json()["edges"]}
    assert {(f"table:{(tmp_path / 'in.parquet').resolve()}", job),
            (f"model_version:main.default.batch_len/{mv.version}", job),
            (job, f"table:{(tmp_path / 'out').resolve()}")} <= edges


def test_an_endpoints_lineage_edge_goes_through_the_server(client, hub, tmp_path, monkeypatch):
    """What ``EndpointRuntime._lineage`` calls: ``add_lineage_edge`` on the registry, here the server's;
    idempotent, and a bad edge comes back as InvalidArgumentError."""
    from hangar.serving.endpoint_runtime import EndpointRuntime
    from hangar.tracking import fluent

    monkeypatch.setenv("HANGAR_TRACKING_URI", hub.url)
    fluent.set_tracking_uri(hub.url)
    try:
        runtime = EndpointRuntime.__new__(EndpointRuntime)  # only what _lineage reads
        runtime.name, runtime.record_lineage = "ep", True
        runtime._lineage("main.default.m/1")
        assert client.registry.add_lineage_edge("model_version", "main.default.m/1", "endpoint", "ep") is False
    finally:
        fluent.set_tracking_uri(None)
    graph = client.get_lineage("endpoint", entity_id="ep")
    assert ("model_version:main.default.m/1", "endpoint:ep") in {(e.src, e.dst) for e in graph.edges}
    with pytest.raises(InvalidArgumentError, match="derived"):
        client.registry.add_lineage_edge("run", "r", "model_version", "main.default.m/1")
