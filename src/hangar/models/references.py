"""References from one package to another (a chain step, a prompt's target model).

A reference is pinned at save time to an immutable target: a local path together with the
digest of its manifest (which lists the checksum of every file), or ``models:/name/N``. It is
checked again at load, so a chain never silently runs a different model than it was built on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hangar.errors import CorruptPackageError, InvalidArgumentError
from hangar.models.manifest import MANIFEST_NAME
from hangar.uri import is_remote_uri, parse_model_uri


def manifest_digest(package_dir: Path) -> str:
    return hashlib.sha256((Path(package_dir) / MANIFEST_NAME).read_bytes()).hexdigest()


def pin_reference(uri: str | os.PathLike, *, resolver=None) -> dict:
    """A reference to ``uri`` that loading can verify; aliases are refused (they move)."""
    from hangar.models.package import open_package
    from hangar.models.resolver import resolve_model_uri

    uri = os.fspath(uri)
    if is_remote_uri(uri):
        parsed = parse_model_uri(uri)
        if parsed.alias:
            raise InvalidArgumentError(
                f"{uri!r} names an alias, which can move; a chain pins its steps: use "
                f"models:/{parsed.name}/<version> instead"
            )
    path = resolve_model_uri(uri, resolver)
    manifest = open_package(path)
    ref = {"uri": uri if is_remote_uri(uri) else str(Path(path).absolute()),
           "manifest_sha256": manifest_digest(path), "model_uuid": manifest.model_uuid}
    return ref


def resolve_reference(ref: dict, package_dir: Path, *, resolver=None) -> Path:
    """The local directory of a pinned reference, verified against its pin."""
    from hangar.models.resolver import resolve_model_uri

    if ref.get("embedded"):
        path = Path(package_dir) / ref["embedded"]
    else:
        path = resolve_model_uri(ref["uri"], resolver)
    expected = ref.get("manifest_sha256")
    if expected and manifest_digest(path) != expected:
        raise CorruptPackageError(
            f"The model at {ref.get('uri') or path} has changed since this package was saved (its "
            "manifest digest differs); re-save the package against the model you want, or restore it"
        )
    return path


def load_reference(ref: dict, package_dir: Path, *, resolver=None):
    from hangar.models.pyfunc import load_pyfunc

    return load_pyfunc(resolve_reference(ref, package_dir, resolver=resolver))


def referenced_requirements(path: Path) -> list[str]:
    from hangar.models.environment import read_requirements

    return read_requirements(path)
