"""One contract, three stores: a local folder, fsspec's memory://, and real S3 (moto's server on loopback)."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import hangar.artifacts as artifacts
from hangar.artifacts import (
    ArtifactRepository,
    FileInfo,
    FsspecArtifactRepository,
    LocalArtifactRepository,
    get_artifact_repository,
    validate_artifact_path,
)
from hangar.errors import InvalidArgumentError, InvalidURIError, NotFoundError

MiB = 1 << 20
BUCKET = "hangar-artifacts-test"
_counter = itertools.count()


# -- backends ---------------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    make: Callable[[], ArtifactRepository]  # a repository at a fresh, empty root
    everything: Callable[[], set[str]]  # every name stored anywhere in this backend's reach


def _local_backend(tmp_path: Path) -> Backend:
    universe = tmp_path / "universe"
    (universe / "store").mkdir(parents=True)

    def everything():
        return {p.relative_to(universe).as_posix() for p in universe.rglob("*")}

    return Backend("local", lambda: LocalArtifactRepository(universe / "store" / f"root-{next(_counter)}"), everything)


def _memory_backend() -> Backend:
    from fsspec.implementations.memory import MemoryFileSystem

    tag = uuid.uuid4().hex
    return Backend("memory", lambda: get_artifact_repository(f"memory://hangar-{tag}/store/root-{next(_counter)}"),
                   lambda: set(MemoryFileSystem.store))


def _s3_backend(server) -> Backend:
    tag = uuid.uuid4().hex

    def everything():
        pages = server["client"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return {obj["Key"] for page in pages for obj in page.get("Contents", [])}

    return Backend("s3", lambda: get_artifact_repository(f"s3://{BUCKET}/{tag}/root-{next(_counter)}", server["options"]),
                   everything)


@pytest.fixture(params=["local", "memory", "s3"])
def backend(request, tmp_path) -> Backend:
    if request.param == "local":
        return _local_backend(tmp_path)
    if request.param == "memory":
        return _memory_backend()
    return _s3_backend(request.getfixturevalue("s3_server"))


@pytest.fixture
def repo(backend) -> ArtifactRepository:
    return backend.make()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# -- the contract -----------------------------------------------------------------------------------


def test_file_round_trip_and_listing(repo, tmp_path):
    src = _write(tmp_path / "src" / "notes.txt", "hello artifacts\n")
    assert repo.log_artifact(src) == "notes.txt"
    assert repo.log_artifact(src, "sub/dir") == "sub/dir/notes.txt"
    assert repo.log_artifact(src, "./sub//other/") == "sub/other/notes.txt"

    assert repo.exists("notes.txt") and repo.exists("sub/dir") and repo.exists("") and not repo.exists("nope")
    assert repo.read_text("sub/dir/notes.txt") == "hello artifacts\n"
    with repo.open_read("notes.txt") as f:
        assert f.read(5) == b"hello" and f.read() == b" artifacts\n"

    assert repo.list_artifacts() == [FileInfo("notes.txt", False, 16), FileInfo("sub", True, None)]
    assert repo.list_artifacts("sub") == [FileInfo("sub/dir", True, None), FileInfo("sub/other", True, None)]
    assert repo.list_artifacts("sub/dir/") == [FileInfo("sub/dir/notes.txt", False, 16)]
    assert repo.list_artifacts("notes.txt") == []  # a file lists as empty, as in MLflow
    assert repo.list_artifacts("missing") == []


def test_tree_upload_and_download(repo, tmp_path):
    src = tmp_path / "model"
    files = {"MLmodel": b"flavors: {}\n", "data/weights.bin": os.urandom(3000), "data/nested/deep/conf.json": b"{}",
             "code/mod.py": b"x = 1\n"}
    for rel, data in files.items():
        _write(src / rel, data)
    (src / "empty").mkdir()

    stored = repo.log_artifacts(src, "model")
    assert stored == sorted(f"model/{rel}" for rel in files)
    assert [f.path for f in repo.list_artifacts("model")] == ["model/MLmodel", "model/code", "model/data"]
    assert repo.list_artifacts("model/data/nested") == [FileInfo("model/data/nested/deep", True, None)]

    out = repo.download_artifacts("model", tmp_path / "dl")
    assert out == (tmp_path / "dl" / "model").resolve()
    assert _tree(out) == files

    whole = repo.download_artifacts(None, tmp_path / "dl-root")
    assert _tree(whole) == {f"model/{rel}": data for rel, data in files.items()}

    one = repo.download_artifacts("model/data/weights.bin", tmp_path / "dl-one")
    assert one.name == "weights.bin" and one.read_bytes() == files["data/weights.bin"]

    # The root of the repository takes a tree too.
    repo.log_artifacts(src / "code")
    assert repo.read_text("mod.py") == "x = 1\n"


def test_overwrite_replaces_content(repo, tmp_path):
    repo.log_artifact(_write(tmp_path / "a" / "f.txt", "first version"), "d")
    repo.log_artifact(_write(tmp_path / "b" / "f.txt", "second"), "d")
    assert repo.read_text("d/f.txt") == "second"
    repo.write_text("d/f.txt", "third")
    repo.write_bytes("d/g.bin", b"\x00\x01")
    assert repo.read_text("d/f.txt") == "third" and repo.read_bytes("d/g.bin") == b"\x00\x01"
    assert repo.list_artifacts("d") == [FileInfo("d/f.txt", False, 5), FileInfo("d/g.bin", False, 2)]
    if isinstance(repo, LocalArtifactRepository):  # no temp files left behind by the atomic writes
        assert sorted(p.name for p in (repo.root / "d").iterdir()) == ["f.txt", "g.bin"]


def check_delete_contract(repo) -> None:
    """What every repository's ``delete_artifacts`` does (the server's HTTP repository too): a file, a folder
    with everything in it, then NotFoundError for what is gone unless ``missing_ok``."""
    repo.delete_artifacts()  # an empty (not yet created) root is fine
    for rel in ["keep.txt", "d/a.txt", "d/e/b.txt", "other/c.txt"]:
        repo.write_text(rel, rel)
    repo.delete_artifacts("d/a.txt")
    assert not repo.exists("d/a.txt") and repo.exists("d/e/b.txt")
    repo.delete_artifacts("d")
    assert not repo.exists("d") and not repo.exists("d/e/b.txt")
    assert [f.path for f in repo.list_artifacts()] == ["keep.txt", "other"]
    with pytest.raises(NotFoundError, match="'d'"):
        repo.delete_artifacts("d")
    repo.delete_artifacts("d", missing_ok=True)


def test_delete(repo, tmp_path):
    check_delete_contract(repo)
    repo.delete_artifacts()
    assert repo.list_artifacts() == [] and not repo.exists("keep.txt")


def test_missing_paths_raise_not_found(repo, tmp_path):
    repo.write_text("dir/present.txt", "x")
    with pytest.raises(NotFoundError):
        repo.open_read("absent.txt")
    with pytest.raises(NotFoundError):
        repo.read_text("dir/absent.txt")
    with pytest.raises(NotFoundError):
        repo.download_artifacts("absent", tmp_path / "dl")
    with pytest.raises(NotFoundError):
        repo.log_artifact(tmp_path / "no-such-file.txt")
    with pytest.raises(NotFoundError):
        repo.log_artifacts(tmp_path / "no-such-dir")
    with pytest.raises(InvalidArgumentError, match="directory"):
        repo.open_read("dir")
    assert not (tmp_path / "dl").exists() or not any((tmp_path / "dl").iterdir())


BAD_PATHS = ["../x", "/etc/passwd", "a/../../b", "%2e%2e/x", "a\\..\\b", "a/%2E%2E/%2e%2e/b", "..%2fx",
             "%252e%252e/x", "x\x00y", "C:/Windows", "<abs-tmp>"]


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_path_traversal_is_rejected_and_writes_nothing(backend, tmp_path, bad):
    repo = backend.make()
    if bad == "<abs-tmp>":
        bad = str(tmp_path / "outside.txt")
    src = _write(tmp_path / "src" / "f.txt", "payload")
    tree = _write(tmp_path / "tree" / "t.txt", "payload").parent
    before = backend.everything()

    attempts = [
        lambda: repo.log_artifact(src, bad),
        lambda: repo.log_artifacts(tree, bad),
        lambda: repo.write_text(f"{bad}/f.txt", "payload"),
        lambda: repo.open_read(bad),
        lambda: repo.exists(bad),
        lambda: repo.list_artifacts(bad),
        lambda: repo.download_artifacts(bad, tmp_path / "dl"),
        lambda: repo.delete_artifacts(bad),
    ]
    if not bad.startswith("/etc"):  # never aim a write at a real system file, even one that must be refused
        attempts.append(lambda: repo.write_text(bad, "payload"))
    for attempt in attempts:
        with pytest.raises(InvalidArgumentError):
            attempt()

    assert backend.everything() == before
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "dl").exists()


def test_symlink_out_of_the_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    _write(outside / "secret.txt", "secret")
    repo = LocalArtifactRepository(tmp_path / "root")
    repo.write_text("ok.txt", "fine")
    os.symlink(outside, tmp_path / "root" / "link")
    with pytest.raises(InvalidArgumentError, match="outside the artifact root"):
        repo.write_text("link/planted.txt", "x")
    with pytest.raises(InvalidArgumentError, match="outside the artifact root"):
        repo.open_read("link/secret.txt")
    with pytest.raises(InvalidArgumentError, match="outside the artifact root"):
        repo.log_artifact(tmp_path / "root" / "ok.txt", "link")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_download_refuses_unsafe_names_found_in_the_store(tmp_path):
    repo = get_artifact_repository(f"memory://hangar-{uuid.uuid4().hex}/root")
    repo.write_text("d/fine.txt", "ok")
    repo.fs.pipe_file(f"{repo.root}/d/x/../../../../escaped.txt", b"evil")  # planted behind Hangar's back
    with pytest.raises(InvalidArgumentError):
        repo.download_artifacts("d", tmp_path / "dl" / "inner")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []


def _big_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(size // MiB):
            chunk = i.to_bytes(8, "little") + block[8:]
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


class _PeakRSS:
    """Samples this process's resident memory in a thread; growth is peak minus the start."""

    def __init__(self):
        psutil = pytest.importorskip("psutil")
        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "s3"], indirect=True)
def test_large_file_streams_with_bounded_memory(repo, tmp_path):
    size = 64 * MiB
    big = tmp_path / "big.bin"
    digest = _big_file(big, size)
    repo.write_text("warm-up.txt", "x")  # create clients, load service models, before measuring
    repo.read_text("warm-up.txt")

    def measured(action):
        with _PeakRSS() as rss:
            tracemalloc.start()
            try:
                result = action()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        assert peak < size // 2, f"Python allocations peaked at {peak / MiB:.1f} MiB for a {size // MiB} MiB file"
        assert rss.growth < size * 3 // 4, f"resident memory grew {rss.growth / MiB:.1f} MiB for a {size // MiB} MiB file"
        return result

    measured(lambda: repo.log_artifact(big, "blobs"))
    assert repo.list_artifacts("blobs") == [FileInfo("blobs/big.bin", False, size)]

    out = measured(lambda: repo.download_artifacts("blobs/big.bin", tmp_path / "dl"))
    assert out.stat().st_size == size

    def stream_hash():
        h = hashlib.sha256()
        with repo.open_read("blobs/big.bin") as f:
            while chunk := f.read(MiB):
                h.update(chunk)
        return h.hexdigest()

    assert measured(stream_hash) == digest
    with open(out, "rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == digest


# -- choosing a repository --------------------------------------------------------------------------


def test_get_artifact_repository_picks_by_scheme(tmp_path):
    local = get_artifact_repository(tmp_path / "a")
    assert isinstance(local, LocalArtifactRepository) and local.root == tmp_path / "a"
    assert local.uri == (tmp_path / "a").as_uri()
    by_uri = get_artifact_repository((tmp_path / "b c").as_uri())
    assert isinstance(by_uri, LocalArtifactRepository) and by_uri.root == tmp_path / "b c"
    assert get_artifact_repository(str(tmp_path / "a")).uri == local.uri

    mem = get_artifact_repository("memory://hangar-pick/x/")
    assert isinstance(mem, FsspecArtifactRepository) and mem.uri == "memory://hangar-pick/x"

    for bad in ["runs:/abc/model", "models:/main.default.m/1", "file://otherhost/x", "file:relative/x", "memory://",
                "no-such-protocol://x/y", "https://example.com/a", ""]:
        with pytest.raises(InvalidURIError):
            get_artifact_repository(bad)


def test_s3_endpoint_and_credentials_from_the_environment(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["url"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    repo = get_artifact_repository(f"s3://{BUCKET}/env-{uuid.uuid4().hex}", {"skip_instance_cache": True})
    repo.write_text("hello.txt", "from env")
    assert repo.read_text("hello.txt") == "from env"
    assert repo.list_artifacts() == [FileInfo("hello.txt", False, 8)]


def test_missing_s3_library_names_the_extra():
    script = textwrap.dedent("""
        import sys
        sys.modules["s3fs"] = None  # as if it were not installed
        from hangar.artifacts import get_artifact_repository
        from hangar.errors import MissingDependencyError
        try:
            get_artifact_repository("s3://bucket/path")
        except MissingDependencyError as exc:
            print(exc.message)
        sys.modules["fsspec"] = None
        for name in [m for m in sys.modules if m.startswith("fsspec.")]:
            sys.modules[name] = None
        try:
            get_artifact_repository("memory://x/y")
        except MissingDependencyError as exc:
            print(exc.message)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stdout
    assert all("pip install 'hangar[s3]'" in line for line in lines)
    assert "s3://" in lines[0] and "'fsspec'" in lines[1]


def test_fsspec_is_imported_lazily():
    out = subprocess.run([sys.executable, "-c", "import sys, hangar.artifacts; print('fsspec' in sys.modules)"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


# -- paths ------------------------------------------------------------------------------------------


def test_validate_artifact_path_normalizes_safe_paths():
    assert validate_artifact_path(None) == "" and validate_artifact_path("./") == ""
    assert validate_artifact_path("a//b/./c/") == "a/b/c"
    assert validate_artifact_path("100%.txt") == "100%.txt"
    assert validate_artifact_path("a%20b/..c/...") == "a%20b/..c/..."  # kept literally; only traversal is refused
    with pytest.raises(InvalidArgumentError, match="root"):
        validate_artifact_path("", allow_root=False)
    with pytest.raises(InvalidArgumentError, match="URL-decoded"):
        validate_artifact_path("%2e%2e/x")
    with pytest.raises(InvalidArgumentError):
        validate_artifact_path(b"bytes")  # type: ignore[arg-type]


def test_public_api_is_sorted_and_complete():
    assert artifacts.__all__ == sorted(artifacts.__all__)
    assert all(hasattr(artifacts, name) for name in artifacts.__all__)
