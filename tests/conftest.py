"""Shared test set-up: offline Hugging Face, and a private HANGAR_HOME for the session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _hangar_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("hangar-home")
    old = os.environ.get("HANGAR_HOME")
    os.environ["HANGAR_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("HANGAR_HOME", None)
    else:
        os.environ["HANGAR_HOME"] = old


# -- stores: every store test runs on SQLite and on PostgreSQL ---------------------------
PG_ADMIN_URI = os.environ.get("HANGAR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin():
    import psycopg

    return psycopg.connect(PG_ADMIN_URI, autocommit=True)


@pytest.fixture(scope="session")
def pg_available():
    try:
        with _pg_admin():
            return True
    except Exception as exc:  # pragma: no cover - CI and dev machines have PostgreSQL
        pytest.fail(f"PostgreSQL is needed at {PG_ADMIN_URI} for the store tests: {exc}")


@pytest.fixture
def pg_uri(pg_available):
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import uuid

    name = f"hangar_t_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URI.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def backend_uri(request, tmp_path):
    """The store URI of a backend: SQLite, PostgreSQL, or a real Hangar server (on SQLite, auth on)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hangar.db'}"
    if request.param == "server":
        return request.getfixturevalue("rest_server_uri")
    return request.getfixturevalue("pg_uri")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_uri(request, tmp_path):
    return backend_uri(request, tmp_path)


@pytest.fixture
def rest_server_uri(tmp_path, monkeypatch):
    """A Hangar server on loopback (uvicorn in a thread, SQLite, artifacts in tmp_path/artifacts, auth
    on); HANGAR_TOKEN holds its admin's token, as a user's environment would."""
    from server_fixtures import start_hub

    server, hub = start_hub(f"sqlite:///{tmp_path / 'server.db'}", tmp_path)
    with server:
        monkeypatch.setenv("HANGAR_TOKEN", hub.admin_token)
        yield hub.url


@pytest.fixture
def store(store_uri, tmp_path):
    from hangar.tracking.client import open_store

    s = open_store(store_uri, str(tmp_path / "artifacts"))
    yield s
    s.close()


import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

BUCKET = "hangar-artifacts-test"


# -- a real S3 endpoint: moto's server in a subprocess ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    pytest.importorskip("s3fs", reason="S3 tests need the s3 extra (s3fs)")
    boto3 = pytest.importorskip("boto3", reason="S3 tests need boto3 to create the bucket")
    pytest.importorskip("moto.server", reason="S3 tests need moto[server]")
    from botocore.exceptions import EndpointConnectionError

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        client = boto3.client("s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing",
                              region_name="us-east-1")
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto server exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except EndpointConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"moto server did not answer on {url} within 30 s:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.1)
        options = {"key": "testing", "secret": "testing",
                   "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"}}
        yield {"url": url, "client": client, "options": options}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the registry: a client on each store, and a trivial package to register ---------------
@pytest.fixture
def client(store_uri, tmp_path, monkeypatch):
    from hangar.catalog.client import Client

    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    c = Client(store_uri, str(tmp_path / "artifacts"))
    yield c
    c.store.close()


@pytest.fixture
def package(tmp_path):
    import hangar.pyfunc as hp

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "assets"))
    from hinted_model import HintedLen

    return hp.save_model(tmp_path / "pkg", HintedLen(), input_example=["abc"])


def load_registered(client, uri):
    """Load a registry URI through this client's registry (not the process-wide one)."""
    import hangar.pyfunc as hp
    from hangar.catalog.resolver import RegistryResolver

    return hp.load_model(uri, resolver=RegistryResolver(client.registry))
