"""``hangar gc`` on SQLite and PostgreSQL: exactly the files of what was deleted go, sizes add up,
a second collection frees nothing, a dry run deletes nothing, live versions still load."""

import os
import sys
import time
import uuid
from pathlib import Path

import pytest

import hangar.pyfunc as hp
from hangar.artifacts import get_artifact_repository
from hangar.catalog.client import Client
from hangar.catalog.gc import PURGED_TAG, collect
from hangar.errors import InvalidArgumentError, ModelPackageError
from hangar.tracking.logged_models import log_model
from hangar.tracking.resolver import TrackingResolver

ASSETS = Path(__file__).parent / "assets"
sys.path.insert(0, str(ASSETS))
from hinted_model import HintedLen  # noqa: E402

DAY = 86400


from conftest import load_registered as load  # noqa: E402


def size(path) -> int:
    path = Path(path)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def files(root) -> set[str]:
    return {str(p) for p in Path(root).rglob("*") if p.is_file()}


def logged_run(client, experiment_id="0", payload=b"x" * 1000):
    run = client.create_run(experiment_id)
    client.log_text(run.info.run_id, payload.decode(), "notes/data.txt")
    client.log_dict(run.info.run_id, {"a": 1}, "config.json")
    return run


def failed_logged_model(client, run, package, lease_seconds=600, finalize=True):
    """A logged model whose upload went (partly) through and which then failed or was abandoned."""
    lm = client.store.create_logged_model(run.info.experiment_id, "m", source_run_id=run.info.run_id,
                                          lease_seconds=lease_seconds)
    get_artifact_repository(lm.artifact_location).log_artifacts(package)
    if finalize:
        client.store.finalize_logged_model(lm.model_id, "FAILED")
    return lm


def failed_version(client, package, name):
    """A registration whose copy failed midway: some files landed, the version is FAILED."""
    full = f"main.default.{name}"
    version = client.registry.count_versions(full) + 1 if _exists(client, full) else 1
    location = Path(client.store.artifact_root) / "registry" / "main" / "default" / name / str(version)
    (location / "requirements.txt").mkdir(parents=True)  # a directory where a file must go
    with pytest.raises(InvalidArgumentError):
        client.register_model(package, full)
    mv = client.registry.search_model_versions(full, include_deleted=True)[0]
    assert mv.status == "FAILED" and (location / "MLmodel").is_file()
    return mv


def _exists(client, full):
    try:
        client.get_registered_model(full)
        return True
    except Exception:
        return False


def loc(uri) -> Path:
    from hangar.artifacts import local_path_from_uri

    return local_path_from_uri(uri)


def test_gc_removes_exactly_what_was_deleted(client, package, tmp_path):
    keep = client.create_experiment("keep")
    drop = client.create_experiment("drop")
    # runs
    r_live = logged_run(client, keep)
    r_del = logged_run(client, keep, b"y" * 5000)
    r_back = logged_run(client, keep)
    r_drop = logged_run(client, drop, b"z" * 3000)
    # logged models
    lm_live = log_model(hp.save_model, "m", HintedLen(), input_example=["a"], run_id=r_live.info.run_id, client=client)
    lm_drop = log_model(hp.save_model, "m", HintedLen(), input_example=["a"], run_id=r_drop.info.run_id, client=client)
    lm_failed = failed_logged_model(client, r_live, package)
    lm_lease = failed_logged_model(client, r_live, package, lease_seconds=0, finalize=False)
    # versions
    for _ in range(3):
        client.register_model(package, "assistant")
    client.set_alias("assistant", "champion", 1)
    client.register_model(lm_live.model_uri, "from_logged")
    for _ in range(2):
        client.register_model(package, "old")
    client.set_alias("old", "champion", 2)
    broken = failed_version(client, package, "broken")

    def vloc(name, n):
        return loc(client.get_model_version(name, n).storage_location)

    version_dirs = {"main.default.assistant/2": vloc("assistant", 2), "main.default.old/1": vloc("old", 1),
                    "main.default.old/2": vloc("old", 2), "main.default.broken/1": loc(broken.storage_location)}
    # deletions
    client.delete_run(r_del.info.run_id)
    client.delete_run(r_back.info.run_id)
    client.restore_run(r_back.info.run_id)
    client.delete_experiment(drop)
    client.delete_model_version("assistant", 2)
    client.delete_registered_model("old", force=True)
    doomed = {
        "runs": {r_del.info.run_id: loc(r_del.info.artifact_uri), r_drop.info.run_id: loc(r_drop.info.artifact_uri)},
        "logged_models": {m.model_id: loc(m.artifact_location) for m in (lm_drop, lm_failed, lm_lease)},
        "model_versions": version_dirs,
    }
    doomed_paths = [p for cat in doomed.values() for p in cat.values()]
    expected = {cat: {k: size(p) for k, p in items.items()} for cat, items in doomed.items()}
    assert all(b > 0 for cat in expected.values() for b in cat.values())
    everything = files(tmp_path / "artifacts")
    survivors = {f for f in everything if not any(f.startswith(str(p) + os.sep) for p in doomed_paths)}
    time.sleep(0.01)  # lm_lease's lease (0 s) has run out

    dry = collect(client, dry_run=True)
    assert files(tmp_path / "artifacts") == everything
    assert dry.expired_logged_model_leases == 1 and client.get_logged_model(lm_lease.model_id).status == "PENDING"
    for cat, sizes in expected.items():
        assert {i.id: i.bytes for i in dry.category(cat).items} == sizes
        assert {i.action for i in dry.category(cat).items} == {"would remove"}
    assert dry.freed_bytes == sum(sum(s.values()) for s in expected.values())
    audit_before = len(client.list_audit())

    report = collect(client)
    assert report.expired_logged_model_leases == 1 and client.get_logged_model(lm_lease.model_id).status == "FAILED"
    for cat, sizes in expected.items():
        got = report.category(cat)
        assert {i.id: i.bytes for i in got.items} == sizes and got.bytes == sum(sizes.values())
        assert {i.action for i in got.items} == {"removed"} and got.removed == len(sizes)
    assert report.freed_bytes == dry.freed_bytes
    assert files(tmp_path / "artifacts") == survivors
    assert not any(p.exists() for p in doomed_paths)

    # metadata stays, marked; live things still work
    assert r_del.info.run_id in {r.info.run_id for r in client.search_runs([keep], view="deleted")[0]}
    assert client.get_run(r_del.info.run_id).data.tags[PURGED_TAG]
    assert PURGED_TAG not in client.get_run(r_back.info.run_id).data.tags
    assert PURGED_TAG in client.get_logged_model(lm_failed.model_id).tags
    old = client.registry.search_model_versions("assistant", include_deleted=True)
    assert [(v.version, v.deleted, PURGED_TAG in v.tags) for v in old] == [(3, False, False), (2, True, True),
                                                                          (1, False, False)]
    assert client.get_model_version("broken", 1).tags[PURGED_TAG]
    assert load(client, "models:/assistant@champion").predict(["abcd"]) == [4]
    assert load(client, "models:/main.default.assistant/3").predict(["ab"]) == [2]
    assert load(client, "models:/from_logged/1").predict(["a"]) == [1]
    assert hp.load_model(lm_live.model_uri, resolver=TrackingResolver(client)).predict(["abc"]) == [3]
    with pytest.raises(ModelPackageError):
        load(client, "models:/broken/1")
    assert client.register_model(package, "assistant").version == 4  # numbers are never reused

    records = client.list_audit()
    gc_records = [r for r in records[:len(records) - audit_before] if r.action == "GC"]
    assert len(gc_records) == 1 and gc_records[0].details["freed_bytes"] == report.freed_bytes
    assert gc_records[0].details["categories"]["runs"]["removed"] == 2
    assert client.verify_audit().ok

    again = collect(client)
    assert again.freed_bytes == 0 and not any(c.items for c in again.categories)
    assert files(tmp_path / "artifacts") >= survivors


def test_gc_never_leaves_the_artifact_root(client, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    exp = client.create_experiment("custom", artifact_location=str(elsewhere))
    outside = logged_run(client, exp)
    linked = logged_run(client)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    link_dir = loc(linked.info.artifact_uri)
    import shutil

    shutil.rmtree(link_dir)
    link_dir.symlink_to(victim, target_is_directory=True)
    client.delete_experiment(exp)
    client.delete_run(linked.info.run_id)
    report = collect(client)
    runs = {i.id: i for i in report.category("runs").items}
    assert {i.action for i in runs.values()} == {"skipped"} and report.freed_bytes == 0
    assert "outside the artifact root" in runs[outside.info.run_id].reason
    assert "outside the artifact root" in runs[linked.info.run_id].reason
    assert (victim / "precious.txt").read_text() == "keep me"
    assert size(loc(outside.info.artifact_uri)) > 0


def _age(path: Path, days: float) -> None:
    stamp = time.time() - days * DAY
    for p in [path, *path.rglob("*")]:
        os.utime(p, (stamp, stamp), follow_symlinks=False)


def _env(root: Path, name: str, complete: bool = True) -> Path:
    env = root / name
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_bytes(b"#" * 100)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (env / "lib.py").write_bytes(b"p" * 2000)
    if complete:
        (env / ".complete").write_text("")
    return env


def test_gc_cache_and_environments(tmp_path, monkeypatch):
    fcntl = pytest.importorskip("fcntl", reason="the builders' lock is an flock here")
    home = tmp_path / "home"
    monkeypatch.setenv("HANGAR_HOME", str(home))
    client = Client(f"sqlite:///{tmp_path / 'hangar.db'}", str(tmp_path / "artifacts"))
    try:
        cache = home / "cache" / "models"
        for name, days in (("stale", 40), ("recent", 2)):
            (cache / name).mkdir(parents=True)
            (cache / name / "MLmodel").write_bytes(b"m" * 300)
            (cache / name / "weights.bin").write_bytes(b"w" * 4000)
            _age(cache / name, days)
        (cache / ".gc-1234-left").mkdir()
        (cache / ".gc-1234-left" / "f").write_bytes(b"l" * 50)
        envs = home / "envs"
        _age(_env(envs, "oldenv"), 45)
        _age(_env(envs, "newenv"), 1)
        _env(envs, "unfinished", complete=False)
        building = _env(envs, "building", complete=False)
        other_hangar = home / "cache" / "hf-model"  # not a model cache entry: never touched
        other_hangar.mkdir(parents=True)
        (other_hangar / "x").write_bytes(b"x")
        _age(other_hangar, 400)

        with open(envs / "building.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            dry = collect(client, dry_run=True)
            assert (cache / "stale").is_dir() and (envs / "oldenv").is_dir()
            report = collect(client)
        c, e = report.category("model_cache"), report.category("environments")
        assert {i.id: i.bytes for i in c.items} == {"stale": 4300, ".gc-1234-left": 50}
        assert {i.id: (i.action, i.bytes) for i in e.items} == {
            "oldenv": ("removed", 2100 + len("home = /usr/bin\n")),
            "unfinished": ("removed", 2100 + len("home = /usr/bin\n")),
            "building": ("skipped", 0)}
        assert {i.id: i.bytes for i in dry.category("environments").items} == {i.id: i.bytes for i in e.items}
        assert sorted(p.name for p in cache.iterdir()) == ["recent"]
        assert sorted(p.name for p in envs.iterdir() if p.is_dir()) == ["building", "newenv"]
        assert (other_hangar / "x").exists() and building.is_dir()
        assert report.freed_bytes == c.bytes + e.bytes == dry.freed_bytes

        later = collect(client).category("environments")  # the lock is free now, and "building" never finished
        assert [(i.id, i.action) for i in later.items] == [("building", "removed")] and not building.exists()
        assert collect(client, older_than_days_cache=1).category("model_cache").removed == 1  # "recent"
        assert collect(client).freed_bytes == 0
        with pytest.raises(InvalidArgumentError):
            collect(client, older_than_days_envs=-1)
    finally:
        client.store.close()


def test_gc_on_a_remote_artifact_store(tmp_path, monkeypatch, package):
    """fsspec stores (here memory://): sizes come from listings, deletion through the repository."""
    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    root = f"memory://gc-{uuid.uuid4().hex[:8]}/artifacts"
    client = Client(f"sqlite:///{tmp_path / 'hangar.db'}", root)
    try:
        run = logged_run(client, payload=b"r" * 700)
        for _ in range(2):
            client.register_model(package, "remote")
        v2 = client.get_model_version("remote", 2)
        expected_version = sum(f.stat().st_size for f in Path(package).rglob("*") if f.is_file())
        client.delete_run(run.info.run_id)
        client.delete_model_version("remote", 2)
        report = collect(client)
        assert {i.id: i.bytes for i in report.category("model_versions").items} == {"main.default.remote/2":
                                                                                   expected_version}
        assert {i.id: i.bytes for i in report.category("runs").items} == {run.info.run_id: 700 + len('{\n  "a": 1\n}')}
        assert not get_artifact_repository(v2.storage_location).exists()
        assert not get_artifact_repository(run.info.artifact_uri).exists()
        assert load(client, "models:/remote/1").predict(["abc"]) == [3]
        assert collect(client).freed_bytes == 0
    finally:
        client.store.close()
