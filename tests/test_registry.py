"""The governed registry on SQLite, PostgreSQL and through a real server: names, versions, aliases,
deletion, loading."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hangar.pyfunc as hp
from hangar.catalog.client import Client
from hangar.errors import AlreadyExistsError, ConflictError, InvalidArgumentError, ModelPackageError, NotFoundError

ASSETS = Path(__file__).parent / "assets"
sys.path.insert(0, str(ASSETS))
from conftest import load_registered as load  # noqa: E402
from hinted_model import HintedLen  # noqa: E402


@pytest.fixture(params=["sqlite", "postgresql", "server"])
def store_uri(request, tmp_path):
    from conftest import backend_uri

    return backend_uri(request, tmp_path)


def test_namespace(client):
    assert [c.name for c in client.list_catalogs()] == ["main"]
    assert [s.full_name for s in client.list_schemas("main")] == ["main.default"]
    client.create_catalog("prod", comment="production")
    client.create_schema("prod.support")
    with pytest.raises(AlreadyExistsError):
        client.create_catalog("prod")
    with pytest.raises(NotFoundError, match="create it first"):
        client.create_schema("nope.x")
    with pytest.raises(InvalidArgumentError, match="Invalid catalog name"):
        client.create_catalog("bad name")
    with pytest.raises(InvalidArgumentError, match="catalog.schema"):
        client.create_schema("justone")
    with pytest.raises(NotFoundError, match=r"No schema prod.sales"):
        client.create_registered_model("prod.sales.bot")
    m = client.create_registered_model("prod.support.assistant", comment="helps", tags={"team": "cx"})
    assert m.full_name == "prod.support.assistant" and m.tags == {"team": "cx"}
    with pytest.raises(ConflictError, match="still has models"):
        client.delete_schema("prod.support")
    with pytest.raises(ConflictError, match="still has schemas"):
        client.delete_catalog("prod")
    assert client.get_registered_model("assistant" if False else "prod.support.assistant").comment == "helps"


def test_versions_are_numbered_and_immutable(client, package):
    v1 = client.register_model(package, "assistant")
    v2 = client.register_model(package, "main.default.assistant", comment="second", tags={"stage": "qa"})
    assert (v1.full_name, v1.version, v1.status) == ("main.default.assistant", 1, "READY")
    assert v2.version == 2 and v2.tags == {"stage": "qa"} and v2.comment == "second"
    assert set(v1.checksums) >= {"python_model.pkl", "requirements.txt"}
    assert v1.signature["inputs"] is not None
    assert load(client, "models:/assistant/1").predict(["abcd"]) == [4]
    client.update_model_version("assistant", 1, comment="edited")
    assert client.get_model_version("assistant", 1).comment == "edited"
    with pytest.raises(NotFoundError, match="No version 9"):
        client.get_model_version("assistant", 9)
    with pytest.raises(InvalidArgumentError, match="positive integer"):
        client.get_model_version("assistant", "one")


def test_register_from_logged_model_and_run(client):
    from hangar.tracking.logged_models import log_model

    run = client.create_run()
    info = log_model(hp.save_model, "m", HintedLen(), input_example=["a"], run_id=run.info.run_id, client=client)
    a = client.register_model(info.model_uri, "from_logged")
    b = client.register_model(info.run_uri, "from_run")
    assert (a.logged_model_id, a.run_id) == (info.model_id, run.info.run_id)
    assert (b.logged_model_id, b.run_id) == (info.model_id, run.info.run_id)
    with pytest.raises(InvalidArgumentError, match="already a registered model"):
        client.register_model("models:/from_logged/1", "again")


def test_aliases_move_atomically_with_history(client, package):
    for _ in range(3):
        client.register_model(package, "assistant")
    client.set_alias("assistant", "champion", 1)
    move = client.set_alias("assistant", "champion", 2)
    assert (move.version, move.previous_version) == (2, 1)
    client.set_alias("assistant", "challenger", 3)
    assert client.get_version_by_alias("assistant", "champion").version == 2
    assert client.get_model_version("assistant", 3).aliases == ("challenger",)
    assert load(client, "models:/main.default.assistant@champion").predict(["xy"]) == [2]
    client.delete_alias("assistant", "challenger")
    history = client.get_alias_history("assistant", "champion")
    assert [(h.version, h.previous_version) for h in history] == [(1, None), (2, 1)]
    assert [(h.alias, h.version) for h in client.get_alias_history("assistant")][-1] == ("challenger", None)
    with pytest.raises(NotFoundError, match="no alias 'challenger'"):
        client.get_version_by_alias("assistant", "challenger")
    with pytest.raises(InvalidArgumentError, match="reserved"):
        client.set_alias("assistant", "latest", 1)
    with pytest.raises(NotFoundError):
        client.set_alias("assistant", "champion", 99)
    assert [m.full_name for m in client.search_registered_models(alias="champion")] == ["main.default.assistant"]


def test_deletion_rules(client, package):
    for _ in range(2):
        client.register_model(package, "assistant")
    client.set_alias("assistant", "champion", 1)
    with pytest.raises(ConflictError, match="@champion"):
        client.delete_model_version("assistant", 1)
    client.delete_model_version("assistant", 2)
    with pytest.raises(NotFoundError):
        load(client, "models:/assistant/2")
    assert client.register_model(package, "assistant").version == 3  # numbers are never reused
    with pytest.raises(ConflictError, match="aliases"):
        client.delete_registered_model("assistant")
    client.delete_registered_model("assistant", force=True)
    with pytest.raises(NotFoundError):
        client.get_registered_model("assistant")
    with pytest.raises(ConflictError, match="was deleted"):
        client.register_model(package, "assistant")
    deleted = client.registry.search_model_versions  # deleted versions stay recorded
    with pytest.raises(NotFoundError):
        deleted("assistant")


def test_every_governance_change_is_audited(client, package):
    client.create_catalog("prod")
    client.register_model(package, "assistant")
    client.set_alias("assistant", "champion", 1)
    load(client, "models:/assistant@champion")
    # (a server's store also holds the bootstrap of its first admin, made before this test)
    actions = [r.action for r in client.list_audit(descending=False) if r.actor != "bootstrap"]
    assert actions == ["CREATE_CATALOG", "CREATE_MODEL", "CREATE_MODEL_VERSION", "FINALIZE_MODEL_VERSION",
                       "SET_ALIAS", "LOAD_MODEL"]
    assert client.verify_audit().ok


def _register(uri, artifacts, home, package, start):
    os.environ["HANGAR_HOME"] = home
    c = Client(uri, artifacts)
    start.wait(30)
    c.register_model(package, "main.default.busy")
    c.store.close()


@pytest.mark.slow
def test_eight_processes_register_at_once(client, package, store_uri, tmp_path):
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_register, args=(store_uri, str(tmp_path / "artifacts"), str(tmp_path / "home"),
                                                 str(package), start)) for _ in range(8)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 8
    versions = client.search_model_versions("busy")
    assert sorted(v.version for v in versions) == list(range(1, 9))
    assert {v.status for v in versions} == {"READY"}


@pytest.mark.slow
def test_killed_registration_is_never_served_and_the_next_one_works(client, store_uri, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(48 << 20))
    pkg = hp.save_model(tmp_path / "bigpkg", HintedLen(), artifacts={"blob": str(big)})
    script = textwrap.dedent(f"""
        from hangar.catalog.client import Client
        c = Client({store_uri!r}, {str(tmp_path / 'artifacts')!r})
        print("go", flush=True)
        c.registry.register_model({str(pkg)!r}, "victim", lease_seconds=1)
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "HANGAR_HOME": str(tmp_path / "home")})
    assert proc.stdout.readline().strip() == "go"
    target = tmp_path / "artifacts" / "registry" / "main" / "default" / "victim" / "1"
    deadline = time.time() + 60
    while time.time() < deadline and not (target / "artifacts").exists():
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert client.get_model_version("victim", 1).status == "PENDING"
    with pytest.raises(ModelPackageError, match="PENDING"):
        load(client, "models:/victim/1")
    with pytest.raises(ConflictError, match="only a READY version"):
        client.set_alias("victim", "champion", 1)
    time.sleep(1.1)  # the dead writer's lease runs out
    v2 = client.register_model(pkg, "victim")
    assert v2.version == 2 and v2.status == "READY"
    assert client.get_model_version("victim", 1).status == "FAILED"
    assert load(client, "models:/victim/2").predict(["abc"]) == [3]


def test_filter_strings_for_models_and_versions(client, package):
    client.create_catalog("prod")
    client.create_schema("prod.support")
    client.create_registered_model("prod.support.bot", tags={"team": "cx"})
    client.create_registered_model("main.default.other", tags={"team": "ml"})
    found = client.search_registered_models(filter_string="name LIKE 'prod.%' and tags.team = 'cx'")
    assert [m.full_name for m in found] == ["prod.support.bot"]
    for _ in range(3):
        client.register_model(package, "prod.support.bot")
    versions = client.search_model_versions("prod.support.bot", filter_string="version >= 2 and status = 'READY'")
    assert [v.version for v in versions] == [3, 2]
    with pytest.raises(InvalidArgumentError, match="Invalid filter"):
        client.search_registered_models(filter_string="tags.team == 'x'")


def test_lineage_from_dataset_to_version(client):
    from hangar.tracking.datasets import DatasetInput, dataset_from
    from hangar.tracking.logged_models import log_model

    run = client.create_run()
    client.log_inputs(run.info.run_id, [DatasetInput(dataset_from({"q": ["a"]}, name="questions"), "train")])
    info = log_model(hp.save_model, "m", HintedLen(), input_example=["a"], run_id=run.info.run_id, client=client)
    client.register_model(info.model_uri, "assistant")
    client.set_alias("assistant", "champion", 1)
    up = client.get_lineage("models:/assistant@champion")
    assert {n.type for n in up.nodes} == {"dataset", "run", "logged_model", "model_version"}
    down = client.get_lineage(f"runs:/{run.info.run_id}", direction="downstream")
    assert any(n.id == "main.default.assistant/1" for n in down.nodes)
