"""The ``MLmodel`` manifest: MLflow's field names, plus Hangar's format version and checksums."""

from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hangar.errors import CorruptPackageError, ModelPackageError, UnsupportedFormatError
from hangar.models.signature import ModelSignature

MANIFEST_NAME = "MLmodel"
FORMAT_VERSION = 1
"""Bumped when a change would make an older Hangar misread a package."""

PYFUNC = "python_function"


@dataclass
class Manifest:
    flavors: dict[str, dict] = field(default_factory=dict)
    signature: ModelSignature | None = None
    saved_input_example_info: dict | None = None
    metadata: dict | None = None
    artifact_path: str | None = None
    model_uuid: str = field(default_factory=lambda: uuid.uuid4().hex)
    model_id: str | None = None
    utc_time_created: str = field(default_factory=lambda: str(_dt.datetime.now(_dt.UTC).replace(tzinfo=None)))
    format_version: int | None = FORMAT_VERSION
    hangar_version: str | None = None
    model_size_bytes: int | None = None
    checksums: dict[str, dict] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str | None:
        return (self.metadata or {}).get("task")

    @property
    def pyfunc_conf(self) -> dict | None:
        return self.flavors.get(PYFUNC)

    def to_dict(self) -> dict:
        out = dict(self.extra)
        out.update(
            {
                "artifact_path": self.artifact_path,
                "flavors": self.flavors,
                "format_version": self.format_version,
                "hangar_version": self.hangar_version,
                "model_id": self.model_id,
                "model_size_bytes": self.model_size_bytes,
                "model_uuid": self.model_uuid,
                "utc_time_created": self.utc_time_created,
            }
        )
        if self.signature is not None:
            out["signature"] = self.signature.to_dict()
        if self.saved_input_example_info is not None:
            out["saved_input_example_info"] = self.saved_input_example_info
        if self.metadata:
            out["metadata"] = self.metadata
        if self.checksums is not None:
            out["checksums"] = self.checksums
        return out

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=True, default_flow_style=False)

    @classmethod
    def from_dict(cls, data: Any, source: str = "MLmodel") -> Manifest:
        if not isinstance(data, dict):
            raise CorruptPackageError(f"{source} is not a YAML mapping; the package is corrupt")
        data = dict(data)
        version = data.pop("format_version", None)
        if version is not None:
            if not isinstance(version, int):
                raise CorruptPackageError(f"{source}: format_version must be an integer, got {version!r}")
            if version > FORMAT_VERSION:
                raise UnsupportedFormatError(
                    f"{source} uses package format version {version}, written by Hangar "
                    f"{data.get('hangar_version', '(unknown)')}; this Hangar reads up to version "
                    f"{FORMAT_VERSION}. Upgrade Hangar (pip install -U hangar) to load it."
                )
        flavors = data.pop("flavors", None)
        if not isinstance(flavors, dict) or not flavors:
            raise CorruptPackageError(f"{source} has no 'flavors' mapping; the package is corrupt")
        for name, conf in flavors.items():
            if not isinstance(conf, dict):
                raise CorruptPackageError(f"{source}: flavor {name!r} has no configuration mapping")
        checksums = data.pop("checksums", None)
        if checksums is not None and not isinstance(checksums, dict):
            raise CorruptPackageError(f"{source}: 'checksums' must be a mapping of file to digest")
        known = {f: data.pop(f, None) for f in (
            "artifact_path", "model_uuid", "model_id", "utc_time_created", "hangar_version",
            "model_size_bytes", "saved_input_example_info", "metadata", "signature")}
        try:
            signature = ModelSignature.from_dict(known.pop("signature"))
        except ModelPackageError:
            raise
        except Exception as exc:
            raise CorruptPackageError(f"{source}: the signature is malformed: {exc}") from None
        return cls(
            flavors=flavors,
            signature=signature,
            format_version=version,
            checksums=checksums,
            extra=data,
            **{k: v for k, v in known.items() if v is not None or k in ("artifact_path", "model_id")},
        )

    @classmethod
    def read(cls, model_dir: str | Path) -> Manifest:
        import yaml

        path = Path(model_dir) / MANIFEST_NAME
        if not Path(model_dir).is_dir():
            raise ModelPackageError(f"No model package at {model_dir}: it is not a directory")
        if not path.is_file():
            raise ModelPackageError(
                f"{model_dir} is not a model package: it has no {MANIFEST_NAME} file "
                "(was it saved with hangar.<flavor>.save_model?)"
            )
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise CorruptPackageError(f"{path} is not valid YAML ({exc}); the package is corrupt") from None
        return cls.from_dict(data, source=str(path))
