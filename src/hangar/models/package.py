"""Write a model package atomically and open one with its manifest and checksums verified.

A package is built in a hidden sibling directory and renamed into place only when complete,
so a reader sees either no package or a whole one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from hangar.errors import InvalidArgumentError, ModelPackageError
from hangar.models.checksums import compute_checksums, verify_checksums
from hangar.models.manifest import FORMAT_VERSION, MANIFEST_NAME, PYFUNC, Manifest
from hangar.models.signature import ModelSignature

INPUT_EXAMPLE = "input_example.json"
SERVING_INPUT_EXAMPLE = "serving_input_example.json"


def _json_default(value):
    import datetime as dt

    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class PackageWriter:
    """Context manager that builds a package in a temp dir and publishes it on success.

    Flavors write their files into ``writer.dir``, then describe themselves with
    ``add_flavor`` / ``add_pyfunc``; the manifest, environment files and checksums are
    written on exit.
    """

    def __init__(self, path: str | os.PathLike, *, metadata: dict | None = None,
                 signature: ModelSignature | None = None):
        self.path = Path(path).expanduser().absolute()
        if self.path.exists():
            raise InvalidArgumentError(
                f"Cannot save a model to {self.path}: it already exists. Packages are immutable; "
                "choose a new path or delete the old one first."
            )
        self.manifest = Manifest(metadata=dict(metadata or {}) or None, signature=signature)
        self.requirements: list[str] = []
        self.dir: Path | None = None

    def __enter__(self) -> PackageWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dir = self.path.parent / f".{self.path.name}.partial-{uuid.uuid4().hex[:12]}"
        self.dir.mkdir()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            return False
        try:
            self._finish()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        return False

    # -- what flavors call -------------------------------------------------------------
    def add_flavor(self, name: str, **config: Any) -> None:
        self.manifest.flavors[name] = config

    def add_pyfunc(self, loader_module: str, **config: Any) -> None:
        """Register the universal view: ``loader_module._load_pyfunc(path, manifest)``."""
        import platform

        conf = {"loader_module": loader_module, "python_version": platform.python_version(),
                "env": {"virtualenv": "python_env.yaml"}}
        conf.update(config)
        self.manifest.flavors[PYFUNC] = conf

    def set_task(self, task: str | None) -> None:
        if task:
            self.manifest.metadata = dict(self.manifest.metadata or {}, task=task)

    def save_input_example(self, example: Any, payload: bool) -> None:
        """Write ``input_example.json`` and the REST-shaped ``serving_input_example.json``."""
        if payload:
            data = example
            info = {"type": "json_object"}
            serving = example
        else:
            from hangar.models.inputs import to_dataframe

            df = to_dataframe(example)
            data = {"columns": [c for c in df.columns], "data": df.values.tolist()}
            info = {"type": "dataframe", "pandas_orient": "split"}
            serving = {"dataframe_split": data}
        info.update({"artifact_path": INPUT_EXAMPLE, "serving_input_path": SERVING_INPUT_EXAMPLE})
        self._write_json(INPUT_EXAMPLE, data)
        self._write_json(SERVING_INPUT_EXAMPLE, serving, indent=2)
        self.manifest.saved_input_example_info = info

    def copy_in(self, source: str | os.PathLike, dest: str) -> Path:
        """Copy a file or directory into the package at relative path ``dest``."""
        source = Path(source)
        target = self.dir / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            shutil.copy2(source, target)
        else:
            raise InvalidArgumentError(f"Cannot add {source} to the package: no such file or directory")
        return target

    # -- finishing ---------------------------------------------------------------------
    def _write_json(self, rel: str, data: Any, indent: int | None = None) -> None:
        (self.dir / rel).write_text(json.dumps(data, default=_json_default, indent=indent), encoding="utf-8")

    def _finish(self) -> None:
        from hangar import __version__
        from hangar.models.environment import write_environment

        if PYFUNC not in self.manifest.flavors and not self.manifest.flavors:
            raise ModelPackageError("A package needs at least one flavor")
        write_environment(self.dir, self.requirements)
        checksums = compute_checksums(self.dir, exclude={MANIFEST_NAME})
        m = self.manifest
        m.format_version = FORMAT_VERSION
        m.hangar_version = __version__
        m.checksums = checksums
        m.model_size_bytes = sum(c["size"] for c in checksums.values())
        (self.dir / MANIFEST_NAME).write_text(m.to_yaml(), encoding="utf-8")
        _fsync_tree(self.dir)
        try:
            os.rename(self.dir, self.path)
        except OSError as exc:
            if self.path.exists():
                raise InvalidArgumentError(
                    f"Cannot save a model to {self.path}: another save created it meanwhile"
                ) from None
            raise ModelPackageError(f"Could not publish the package at {self.path}: {exc}") from None
        _fsync_dir(self.path.parent)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_package(path: str | os.PathLike, verify: bool = True) -> Manifest:
    """Read a package's manifest and (by default) verify every file against its checksum."""
    root = Path(path)
    manifest = Manifest.read(root)
    if verify and manifest.checksums is not None:
        verify_checksums(root, manifest.checksums)
    return manifest


def read_input_example(path: str | os.PathLike, manifest: Manifest) -> Any:
    info = manifest.saved_input_example_info
    if not info:
        return None
    data = json.loads((Path(path) / info["artifact_path"]).read_text(encoding="utf-8"))
    if info.get("type") == "dataframe":
        import pandas as pd

        return pd.DataFrame(data["data"], columns=data["columns"])
    return data
