"""File checksums for a package: computed once at save, verified at load."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hangar.errors import CorruptPackageError

_CHUNK = 1 << 20
_IGNORED_DIRS = {"__pycache__"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def package_files(root: Path, exclude: set[str]) -> list[str]:
    """Relative POSIX paths of every regular file under ``root``, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS)
        for name in filenames:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if rel not in exclude and not name.endswith(".pyc"):
                out.append(rel)
    return sorted(out)


def compute_checksums(root: Path, exclude: set[str]) -> dict[str, dict]:
    return {
        rel: {"sha256": sha256_file(root / rel), "size": (root / rel).stat().st_size}
        for rel in package_files(root, exclude)
    }


def verify_checksums(root: Path, checksums: dict[str, dict]) -> None:
    """Raise CorruptPackageError naming every missing, truncated or altered file."""
    problems = []
    for rel, expected in sorted(checksums.items()):
        path = root / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            problems.append(f"{rel}: the manifest names a path outside the package")
            continue
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        size = path.stat().st_size
        if "size" in expected and size != expected["size"]:
            problems.append(f"{rel}: {size} bytes, expected {expected['size']} (truncated or altered)")
            continue
        if sha256_file(path) != expected.get("sha256"):
            problems.append(f"{rel}: content does not match its sha256 checksum (altered or corrupt)")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CorruptPackageError(
            f"The model package at {root} is incomplete or corrupt:\n  {shown}{more}\n"
            "Copy or download the package again (or re-save it); do not edit files inside a package."
        )
