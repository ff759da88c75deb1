"""Capture the environment a package needs: ``requirements.txt`` and ``python_env.yaml``.

Requirements are inferred from the modules a model really uses (the globals its pickle
references, the imports of its code files, the libraries its flavor loads), mapped to the
installed distributions and pinned to their installed versions.
"""

from __future__ import annotations

import ast
import pickletools
import platform
import sys
from functools import lru_cache
from pathlib import Path

REQUIREMENTS = "requirements.txt"
PYTHON_ENV = "python_env.yaml"


def modules_in_pickle(data: bytes) -> set[str]:
    """Top-level module names referenced by GLOBAL / STACK_GLOBAL opcodes in a pickle."""
    found: set[str] = set()
    strings: list[str] = []
    for opcode, arg, _pos in pickletools.genops(data):
        if opcode.name == "GLOBAL" and isinstance(arg, str):
            found.add(arg.split(" ", 1)[0].split(".")[0])
        elif opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.add(strings[-2].split(".")[0])
        elif opcode.name in ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
            continue
    return found


def modules_in_source(path: Path) -> set[str]:
    """Top-level modules imported (absolutely) by a Python source file or a directory of them."""
    files = [path] if path.is_file() else sorted(path.rglob("*.py"))
    found: set[str] = set()
    for f in files:
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


@lru_cache(maxsize=1)
def _module_to_dists() -> dict[str, list[str]]:
    import importlib.metadata as md

    return md.packages_distributions()


def _installed_version(dist: str) -> str | None:
    """The installed version without a local label (``2.4.0+cpu`` → ``2.4.0``): a local build
    such as a CPU-only torch wheel is not on any index, but its public version is."""
    import importlib.metadata as md

    try:
        return md.version(dist).split("+", 1)[0]
    except md.PackageNotFoundError:
        return None


def requirements_for_modules(modules: set[str], skip: set[str] = frozenset()) -> list[str]:
    """Pinned requirements (``dist==version``) for third-party modules; stdlib and local are skipped."""
    mapping = _module_to_dists()
    reqs = {}
    for mod in sorted(modules):
        if not mod or mod in sys.stdlib_module_names or mod in skip or mod == "__main__":
            continue
        for dist in mapping.get(mod, []):
            version = _installed_version(dist)
            if version is not None:
                reqs[_canonical(dist)] = f"{_canonical(dist)}=={version}"
    return [reqs[k] for k in sorted(reqs)]


def _canonical(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def pin(*dists: str) -> list[str]:
    """``dist==installed`` for each named distribution that is installed (others unpinned)."""
    out = []
    for d in dists:
        v = _installed_version(d)
        out.append(f"{_canonical(d)}=={v}" if v else _canonical(d))
    return out


def hangar_requirement() -> str:
    from hangar import __version__

    return f"hangar=={__version__}"


def merge_requirements(*groups) -> list[str]:
    """Union of requirement lists; a later group's entry for the same project wins."""
    from packaging.requirements import InvalidRequirement, Requirement

    merged: dict[str, str] = {}
    for group in groups:
        for line in group or ():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                key = _canonical(Requirement(line).name)
            except InvalidRequirement:
                key = line  # a -r / -c / URL line: keep as is
            merged[key] = line
    return list(merged.values())


def resolve_requirements(inferred: list[str], pip_requirements=None, extra_pip_requirements=None) -> list[str]:
    """``pip_requirements`` replaces the inferred list; ``extra_pip_requirements`` adds to it."""
    from hangar.errors import InvalidArgumentError

    if pip_requirements is not None and extra_pip_requirements is not None:
        raise InvalidArgumentError("Pass either pip_requirements or extra_pip_requirements, not both")
    base = _read_req_arg(pip_requirements) if pip_requirements is not None else inferred
    return merge_requirements([hangar_requirement()], base, _read_req_arg(extra_pip_requirements))


def _read_req_arg(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, Path)) and Path(value).is_file():
        return Path(value).read_text(encoding="utf-8").splitlines()
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def write_environment(package_dir: Path, requirements: list[str]) -> None:
    import yaml

    reqs = merge_requirements([hangar_requirement()], requirements)
    (package_dir / REQUIREMENTS).write_text("\n".join(reqs) + "\n", encoding="utf-8")
    env = {
        "python": platform.python_version(),
        "build_dependencies": pin("pip", "setuptools", "wheel"),
        "dependencies": [f"-r {REQUIREMENTS}"],
    }
    (package_dir / PYTHON_ENV).write_text(yaml.safe_dump(env, sort_keys=False), encoding="utf-8")


def read_requirements(package_dir: Path) -> list[str]:
    path = Path(package_dir) / REQUIREMENTS
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("#")]
