"""Isolated virtual environments for model packages, built with uv (``python -m venv`` + pip
when uv is absent) and shared between packages with the same needs.

An environment lives at ``Settings.envs_dir / <key>``. The key hashes the Python version the
package asks for (``major.minor``), its requirements (sorted, as they will be installed) and
the index settings (index URLs, find-links, constraint files and their content), so two
packages with the same needs share one environment.

Building is safe against two processes at once (an exclusive ``flock`` on ``<key>.lock``
beside the environment) and against being killed midway: the environment is built in place
(a virtualenv cannot be moved) and a ``.complete`` marker is written last; an environment
without the marker is removed and built again.

uv does not read pip's configuration, so :class:`IndexSettings` reads it the way pip does
(configuration files, then ``PIP_*`` variables) and hands it to uv as arguments. The
requirement on Hangar itself is replaced by the source the running Hangar was installed from
(PEP 610 ``direct_url.json``: an editable checkout, a local wheel, a VCS URL), since that
build may be on no index.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hangar.config import Settings
from hangar.errors import EnvironmentBuildError, InvalidArgumentError

log = logging.getLogger(__name__)

ENV_FORMAT = 1
"""Bumped when the layout or the key changes, so old environments are not reused."""
MARKER = ".complete"
INFO_FILE = "hangar-env.json"
REQUIREMENTS_FILE = "hangar-requirements.txt"
ACTIVE_ENV_VAR = "HANGAR_ACTIVE_ENV"
"""Set in a command re-executed inside an environment (its path), so it does not re-execute."""
ENV_MANAGERS = ("local", "uv")

_WINDOWS = sys.platform == "win32"
_PIP_SECTIONS = ("global", "install", ":env:")  # pip's precedence, lowest first


# -- pip configuration ----------------------------------------------------------------------

def pip_config_files(environ: dict | None = None) -> list[Path]:
    """The files pip reads, lowest precedence first (global, user, site, ``PIP_CONFIG_FILE``)."""
    env = os.environ if environ is None else environ
    config_file = env.get("PIP_CONFIG_FILE")
    if config_file == os.devnull:
        return []
    name = "pip.ini" if _WINDOWS else "pip.conf"
    home = Path(env.get("HOME") or Path.home())
    files: list[Path] = []
    if _WINDOWS:
        files.append(Path(env.get("PROGRAMDATA", r"C:\ProgramData")) / "pip" / name)
        user = [home / "pip" / name, Path(env.get("APPDATA", home)) / "pip" / name]
    elif sys.platform == "darwin":
        files.append(Path("/Library/Application Support/pip") / name)
        mac = home / "Library" / "Application Support" / "pip"
        user = [home / ".pip" / name, (mac if mac.is_dir() else home / ".config" / "pip") / name]
    else:
        dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
        files += [Path(d) / "pip" / name for d in dirs if d] + [Path("/etc") / name]
        user = [home / ".pip" / name, Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "pip" / name]
    if not (config_file and os.path.exists(config_file)):
        files += user
    files.append(Path(sys.prefix) / name)
    if config_file:
        files.append(Path(config_file))
    return files


def _norm_key(name: str) -> str:
    name = name.lower().replace("_", "-")
    return name[2:] if name.startswith("--") else name


def read_pip_config(environ: dict | None = None, files: Sequence[str | os.PathLike] | None = None) -> dict[str, str]:
    """The raw option values ``pip install`` would use, resolved with pip's precedence:
    ``[global]`` < ``[install]`` < ``PIP_*`` variables, and later files over earlier ones."""
    env = os.environ if environ is None else environ
    merged: dict[str, str] = {}
    for path in pip_config_files(env) if files is None else [Path(f) for f in files]:
        if not path.is_file():
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            log.warning("Ignoring pip configuration file %s: %s", path, exc)
            continue
        for section in parser.sections():
            for key, value in parser.items(section):
                merged[f"{section}.{_norm_key(key)}"] = value
    for key, value in env.items():
        if key.startswith("PIP_") and _norm_key(key[4:]) not in ("version", "help"):
            merged[f":env:.{_norm_key(key[4:])}"] = value
    out: dict[str, str] = {}
    for section in _PIP_SECTIONS:
        for section_key, value in merged.items():
            sec, _, key = section_key.partition(".")
            if sec == section and value:
                out[key] = value
    return out


def _is_url(value: str) -> bool:
    return "://" in value


def _absolute(value: str) -> str:
    """A local path made absolute (builds run in another directory); URLs unchanged."""
    return value if _is_url(value) else str(Path(value).expanduser().absolute())


def _has_credentials(url: str) -> bool:
    from urllib.parse import urlsplit

    return _is_url(url) and "@" in urlsplit(url).netloc


def redact(url: str) -> str:
    """A URL with any password or token replaced by ``***`` (safe to show and store)."""
    from urllib.parse import urlsplit, urlunsplit

    if not _is_url(url):
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "y", "yes", "t", "true", "on")


@dataclass(frozen=True)
class IndexSettings:
    """Where packages come from. Build it from pip's configuration, then add explicit overrides."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    no_index: bool = False
    trusted_hosts: tuple[str, ...] = ()
    cert: str | None = None

    @classmethod
    def from_pip_config(cls, environ: dict | None = None,
                        files: Sequence[str | os.PathLike] | None = None) -> IndexSettings:
        cfg = read_pip_config(environ, files)
        return cls(
            index_url=cfg.get("index-url") or None,
            extra_index_urls=tuple(cfg.get("extra-index-url", "").split()),
            find_links=tuple(_absolute(v) for v in cfg.get("find-links", "").split()),
            constraints=tuple(_absolute(v) for v in cfg.get("constraint", "").split()),
            no_index=_truthy(cfg.get("no-index", "")),
            trusted_hosts=tuple(cfg.get("trusted-host", "").split()),
            cert=cfg.get("cert") or None,
        )

    def with_overrides(self, *, index_url: str | None = None, extra_index_urls: Sequence[str] = (),
                       find_links: Sequence[str] = (), constraints: Sequence[str] = (),
                       no_index: bool | None = None) -> IndexSettings:
        """``index_url`` / ``no_index`` replace; the lists add to what is configured (as on pip's command line)."""
        def add(old, new):
            return tuple(dict.fromkeys([*old, *new]))

        return dataclasses.replace(
            self,
            index_url=index_url or self.index_url,
            extra_index_urls=add(self.extra_index_urls, extra_index_urls),
            find_links=add(self.find_links, [_absolute(v) for v in find_links]),
            constraints=add(self.constraints, [_absolute(v) for v in constraints]),
            no_index=self.no_index if no_index is None else no_index,
        )

    def _secret_urls(self) -> tuple[bool, bool]:
        """Whether the index URL / the extra index URLs carry credentials (kept off command lines,
        which other local users can read in ``ps``)."""
        return (bool(self.index_url) and _has_credentials(self.index_url),
                any(_has_credentials(u) for u in self.extra_index_urls))

    def _args(self, names: dict[str, str]) -> list[str]:
        secret_index, secret_extra = self._secret_urls()
        args: list[str] = ["--no-index"] if self.no_index else []
        if self.index_url and not secret_index:
            args += ["--index-url", self.index_url]
        if not secret_extra:
            for url in self.extra_index_urls:
                args += ["--extra-index-url", url]
        for link in self.find_links:
            args += [names["find_links"], link]
        for path in self.constraints:
            args += [names["constraint"], path]
        for host in self.trusted_hosts:
            args += [names["trusted_host"], host]
        return args

    def _environ(self, prefix: str) -> dict[str, str]:
        secret_index, secret_extra = self._secret_urls()
        env = {}
        if secret_index:
            env[f"{prefix}INDEX_URL"] = self.index_url
        if secret_extra:
            env[f"{prefix}EXTRA_INDEX_URL"] = " ".join(self.extra_index_urls)
        return env

    def uv_args(self) -> list[str]:
        """Arguments for ``uv pip install`` (URLs with credentials go in :meth:`uv_environ`).

        With extra indexes, uv is told to pick the best version across all of them, as pip
        does (uv's default stops at the first index that has the project, which fails when a
        partial mirror lacks the pinned version)."""
        args = self._args({"find_links": "-f", "constraint": "-c", "trusted_host": "--allow-insecure-host"})
        if self.extra_index_urls:
            args += ["--index-strategy", "unsafe-best-match"]
        return args

    def uv_environ(self) -> dict[str, str]:
        env = self._environ("UV_")
        if self.cert and not os.environ.get("SSL_CERT_FILE"):
            env["SSL_CERT_FILE"] = self.cert
        return env

    def pip_args(self) -> list[str]:
        """Arguments for ``pip install`` run with pip's own configuration switched off."""
        args = self._args({"find_links": "--find-links", "constraint": "--constraint",
                           "trusted_host": "--trusted-host"})
        return args + (["--cert", self.cert] if self.cert else [])

    def pip_environ(self) -> dict[str, str]:
        return self._environ("PIP_")

    def fingerprint(self) -> dict[str, Any]:
        """What decides which packages get installed (part of the environment key)."""
        return {
            "index_url": self.index_url,
            "extra_index_urls": list(self.extra_index_urls),
            "find_links": list(self.find_links),
            "constraints": [{"path": c, "sha256": _file_digest(c)} for c in self.constraints],
            "no_index": self.no_index,
        }

    def describe(self) -> dict[str, Any]:
        """The fingerprint with credentials removed from URLs."""
        fp = self.fingerprint()
        fp["index_url"] = redact(fp["index_url"]) if fp["index_url"] else None
        fp["extra_index_urls"] = [redact(u) for u in fp["extra_index_urls"]]
        fp["find_links"] = [redact(u) for u in fp["find_links"]]
        return fp


def _file_digest(path: str) -> str | None:
    if _is_url(path):
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


# -- what a package needs ---------------------------------------------------------------------

def hangar_source_requirement() -> str | None:
    """How to install the running Hangar when it did not come from an index, else None.

    Reads PEP 610 ``direct_url.json``: an editable checkout gives ``-e /path``, a local
    directory or wheel ``hangar @ file:///...``, a VCS install ``hangar @ git+URL@commit``.
    """
    import importlib.metadata as md
    from urllib.parse import unquote, urlsplit

    try:
        text = md.distribution("hangar").read_text("direct_url.json")
    except md.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        info = json.loads(text)
        url = info["url"]
    except (ValueError, KeyError, TypeError):
        return None
    if "vcs_info" in info:
        vcs = info["vcs_info"]
        rev = vcs.get("commit_id") or vcs.get("requested_revision")
        return f"hangar @ {vcs['vcs']}+{url}" + (f"@{rev}" if rev else "")
    if not url.startswith("file:"):
        return f"hangar @ {url}"
    path = Path(unquote(urlsplit(url).path))
    if not path.exists():
        log.warning("Hangar was installed from %s, which no longer exists; using the pinned version", path)
        return None
    if (info.get("dir_info") or {}).get("editable"):
        return f"-e {path}"
    return f"hangar @ {path.as_uri()}"


def _with_extras(line: str, extras: Sequence[str]) -> str:
    """``hangar==1.0`` → ``hangar[serving]==1.0``; ``-e /src`` → ``-e /src[serving]``."""
    if line.startswith("-e "):
        return line + "[" + ",".join(sorted(extras)) + "]"
    match = re.match(r"^(hangar)(\[([^\]]*)\])?", line.strip())
    if not match:
        return line
    have = {e.strip() for e in (match.group(3) or "").split(",") if e.strip()}
    return f"hangar[{','.join(sorted(have | set(extras)))}]" + line.strip()[match.end():]


def _requirement_name(line: str) -> str | None:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        return canonicalize_name(Requirement(line).name)
    except InvalidRequirement:
        return None


def _read_lines(path: Path, seen: set[Path]) -> list[str]:
    """Requirement lines of a file, with ``-r other.txt`` inlined (so the key is content-based)."""
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    if not path.is_file():
        raise InvalidArgumentError(f"The package's requirements file {path} does not exist")
    out: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r", "--requirement")):
            target = line[len("--requirement"):] if line.startswith("--requirement") else line[2:]
            out += _read_lines(path.parent / target.lstrip(" =").strip(), seen)
        elif line.startswith(("-c", "--constraint")):
            target = line[len("--constraint"):] if line.startswith("--constraint") else line[2:]
            out.append(f"-c {_absolute(str(path.parent / target.lstrip(' =').strip()))}")
        else:
            out.append(line)
    return out


@dataclass(frozen=True)
class EnvSpec:
    """What an environment must hold. Equal specs share one environment."""

    python: str
    requirements: tuple[str, ...]
    index: IndexSettings

    @classmethod
    def for_package(cls, package_dir: str | os.PathLike, index: IndexSettings | None = None,
                    hangar_requirement: str | None = "auto", hangar_extras: Sequence[str] = ()) -> EnvSpec:
        """Read ``python_env.yaml`` (or ``requirements.txt``) of a package directory.

        ``hangar_requirement``: "auto" installs the running Hangar from its source when it was
        installed from one (see :func:`hangar_source_requirement`); None keeps the package's pin.
        """
        import yaml

        from hangar.models.environment import PYTHON_ENV, REQUIREMENTS

        root = Path(package_dir)
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        lines: list[str] = []
        env_file = root / PYTHON_ENV
        if env_file.is_file():
            conf = yaml.safe_load(env_file.read_text(encoding="utf-8")) or {}
            if conf.get("python"):
                python = ".".join(str(conf["python"]).split(".")[:2])
            seen: set[Path] = set()
            for dep in [*(conf.get("build_dependencies") or []), *(conf.get("dependencies") or [])]:
                dep = str(dep).strip()
                if dep.startswith("-r"):
                    lines += _read_lines(root / dep[2:].strip(), seen)
                elif dep:
                    lines.append(dep)
        elif (root / REQUIREMENTS).is_file():
            lines = _read_lines(root / REQUIREMENTS, set())
        elif not (root / "MLmodel").is_file():
            raise InvalidArgumentError(f"{root} is not a model package (no MLmodel)")
        if hangar_requirement == "auto":
            hangar_requirement = hangar_source_requirement()
        if hangar_requirement:
            lines = [ln for ln in lines if _requirement_name(ln) != "hangar"] + [hangar_requirement]
        elif not any(_requirement_name(ln) == "hangar" for ln in lines):
            from hangar.models.environment import hangar_requirement as pinned

            lines.append(pinned())
        if hangar_extras:
            lines = [_with_extras(ln, hangar_extras) if ln == hangar_requirement or _requirement_name(ln) == "hangar"
                     else ln for ln in lines]
        return cls(python=python, requirements=tuple(sorted(dict.fromkeys(lines))),
                   index=index if index is not None else IndexSettings())

    @property
    def key(self) -> str:
        data = {"format": ENV_FORMAT, "python": self.python, "requirements": sorted(self.requirements),
                "index": self.index.fingerprint()}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]


# -- environments on disk ---------------------------------------------------------------------

@dataclass(frozen=True)
class PythonEnv:
    """One environment directory (built or not)."""

    path: Path

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def python(self) -> Path:
        return self.path / ("Scripts/python.exe" if _WINDOWS else "bin/python")

    @property
    def bin_dir(self) -> Path:
        return self.python.parent

    @property
    def complete(self) -> bool:
        return (self.path / MARKER).is_file() and self.python.exists()

    @property
    def info(self) -> dict:
        try:
            return json.loads((self.path / INFO_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def environ(self, base: dict | None = None) -> dict[str, str]:
        """Environment variables that run a process inside this environment (as ``activate`` would)."""
        env = dict(os.environ if base is None else base)
        env.pop("PYTHONHOME", None)
        env["VIRTUAL_ENV"] = str(self.path)
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", "")])
        env[ACTIVE_ENV_VAR] = str(self.path)
        env["HANGAR_ENV_MANAGER"] = "local"
        return env


def find_uv() -> str | None:
    """The uv binary: the one the ``uv`` Python package ships, else ``uv`` on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


@contextlib.contextmanager
def _exclusive(lock_path: Path, what: str) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as f:
        if _WINDOWS:  # pragma: no cover - exercised on Windows only
            import msvcrt

            while True:
                f.seek(0)
                try:
                    msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    time.sleep(0.5)
            try:
                yield
            finally:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
            return
        import fcntl

        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("Waiting for another process that is building %s", what)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class EnvManager:
    """Builds, finds and lists the environments under ``settings.envs_dir``.

    ``index``: where packages come from (default: pip's configuration, read once here).
    ``installer``: "auto" (uv, else venv + pip), "uv" or "pip". ``stream_output`` sends the
    installer's output to this process's stderr instead of keeping it for error messages.
    """

    def __init__(self, settings: Settings | None = None, *, index: IndexSettings | None = None,
                 installer: str = "auto", uv_bin: str | None = None, resolver=None,
                 stream_output: bool = False, hangar_extras: Sequence[str] = ()):
        if installer not in ("auto", "uv", "pip"):
            raise InvalidArgumentError(f"installer must be 'auto', 'uv' or 'pip', got {installer!r}")
        self.settings = settings or Settings.from_env()
        self.index = index if index is not None else IndexSettings.from_pip_config()
        self.installer = installer
        self.uv_bin = uv_bin
        self.resolver = resolver
        self.stream_output = stream_output
        self.hangar_extras = tuple(hangar_extras)  # e.g. ("serving",) for an environment that serves

    # -- looking up ----------------------------------------------------------------------
    def spec(self, model_uri: str | os.PathLike) -> EnvSpec:
        from hangar.models.resolver import resolve_model_uri

        return EnvSpec.for_package(resolve_model_uri(model_uri, self.resolver), self.index,
                                   hangar_extras=self.hangar_extras)

    def env_for(self, spec_or_uri: EnvSpec | str | os.PathLike) -> PythonEnv:
        spec = spec_or_uri if isinstance(spec_or_uri, EnvSpec) else self.spec(spec_or_uri)
        return PythonEnv(self.settings.envs_dir / spec.key)

    def list(self) -> list[PythonEnv]:
        root = self.settings.envs_dir
        if not root.is_dir():
            return []
        return [PythonEnv(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]

    # -- building ------------------------------------------------------------------------
    def ensure(self, spec_or_uri: EnvSpec | str | os.PathLike) -> PythonEnv:
        """The environment for a package, built first if it is missing or incomplete."""
        return self.create(spec_or_uri)[0]

    def create(self, spec_or_uri: EnvSpec | str | os.PathLike) -> tuple[PythonEnv, bool]:
        """Like :meth:`ensure`, and whether this call built it (False: it was there already)."""
        spec = spec_or_uri if isinstance(spec_or_uri, EnvSpec) else self.spec(spec_or_uri)
        env = self.env_for(spec)
        if env.complete:
            return env, False
        with _exclusive(env.path.with_name(f"{env.key}.lock"), f"the environment {env.path}"):
            if env.complete:  # another process built it while we waited
                return env, False
            self._build(spec, env)
        return env, True

    def _choose_installer(self) -> tuple[str, str | None]:
        if self.installer == "pip":
            return "pip", None
        uv = self.uv_bin or find_uv()
        if uv:
            return "uv", uv
        if self.installer == "uv":
            raise EnvironmentBuildError(
                "uv is not installed: pip install 'hangar[uv]' (or put uv on PATH)")
        log.warning("uv was not found; building the environment with python -m venv and pip "
                    "(slower). Install it with: pip install 'hangar[uv]'")
        return "pip", None

    def _build(self, spec: EnvSpec, env: PythonEnv) -> None:
        if env.path.exists():
            log.warning("Removing the incomplete environment %s (a build was interrupted)", env.path)
            shutil.rmtree(env.path)
        env.path.parent.mkdir(parents=True, exist_ok=True)
        installer, uv = self._choose_installer()
        started = time.monotonic()
        try:
            if installer == "uv":
                self._run([uv, "venv", str(env.path), "--python", self._base_python(spec, uv=True),
                           "--no-project", "--quiet"], env)
                reqs = self._write_requirements(spec, env)
                self._run([uv, "pip", "install", "--python", str(env.python), *spec.index.uv_args(),
                           "-r", str(reqs)], env, extra_env=spec.index.uv_environ())
            else:
                self._run([self._base_python(spec, uv=False), "-m", "venv", str(env.path)], env)
                reqs = self._write_requirements(spec, env)
                self._run([str(env.python), "-m", "pip", "install", "--disable-pip-version-check",
                           *spec.index.pip_args(), "-r", str(reqs)], env,
                          extra_env={**_no_pip_config(), **spec.index.pip_environ()})
        except BaseException:
            # Leave no half-built environment behind when we can help it; one left by a kill
            # has no marker and is rebuilt next time.
            shutil.rmtree(env.path, ignore_errors=True)
            raise
        seconds = round(time.monotonic() - started, 2)
        python = subprocess.run([str(env.python), "-c", "import platform; print(platform.python_version())"],
                                capture_output=True, text=True).stdout.strip()
        info = {"format": ENV_FORMAT, "key": env.key, "python": python, "python_requested": spec.python,
                "requirements": list(spec.requirements), "index": spec.index.describe(),
                "installer": installer, "build_seconds": seconds,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _write_atomic(env.path / INFO_FILE, json.dumps(info, indent=2))
        _write_atomic(env.path / MARKER, env.key + "\n")  # last: the environment is now usable
        log.info("Built %s with %s in %.1f s", env.path, installer, seconds)

    def _write_requirements(self, spec: EnvSpec, env: PythonEnv) -> Path:
        path = env.path / REQUIREMENTS_FILE
        path.write_text("\n".join(spec.requirements) + "\n", encoding="utf-8")
        return path

    @staticmethod
    def _base_python(spec: EnvSpec, uv: bool) -> str:
        if spec.python == f"{sys.version_info.major}.{sys.version_info.minor}":
            return sys.executable
        if uv:
            return spec.python  # uv finds (or fetches) an interpreter of that version
        found = shutil.which(f"python{spec.python}")
        if not found:
            raise EnvironmentBuildError(
                f"The package needs Python {spec.python}, which is not on PATH (this is Python "
                f"{sys.version_info.major}.{sys.version_info.minor}). Install it, or install uv, "
                "which can provide it.")
        return found

    def _run(self, cmd: list[str], env: PythonEnv, extra_env: dict | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
        environ.update(extra_env or {})
        shown = " ".join(redact(c) for c in cmd)
        log.debug("Running %s", shown)
        cwd = self.settings.envs_dir  # not the caller's project: uv would read its pyproject
        if self.stream_output:
            proc = subprocess.run(cmd, env=environ, cwd=cwd, stdout=2, stderr=2)
            output = ""
        else:
            proc = subprocess.run(cmd, env=environ, cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace")
            output = proc.stdout or ""
        if proc.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-30:])
            raise EnvironmentBuildError(
                f"Building the environment {env.path} failed: `{shown}` exited with {proc.returncode}"
                + (f":\n{tail}" if tail else " (its output is above)"))

    # -- running inside ------------------------------------------------------------------
    def run(self, model_uri: str | os.PathLike, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
        """``python -m hangar.cli.main *argv`` inside the package's environment (built if needed)."""
        env = self.ensure(model_uri)
        environ = env.environ(kwargs.pop("env", None))
        return subprocess.run([str(env.python), "-m", "hangar.cli.main", *argv], env=environ, **kwargs)


def _no_pip_config() -> dict[str, str]:
    """pip gets its index settings from our arguments only, so both installers see the same."""
    return {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "", "PIP_EXTRA_INDEX_URL": "",
            "PIP_FIND_LINKS": "", "PIP_CONSTRAINT": "", "PIP_NO_INDEX": "", "PIP_TRUSTED_HOST": ""}


def inside_managed_env() -> bool:
    """True in a process that :func:`run_in_env` started inside an environment."""
    active = os.environ.get(ACTIVE_ENV_VAR)
    if not active:
        return False
    try:
        return Path(sys.prefix).resolve() == Path(active).resolve()
    except OSError:
        return False


def run_in_env(model_uri: str | os.PathLike, argv: Sequence[str], *, settings: Settings | None = None,
               index: IndexSettings | None = None, resolver=None, stream_output: bool = True,
               **kwargs) -> int:
    """Re-execute ``python -m hangar.cli.main *argv`` inside the environment ``model_uri`` needs
    and return its exit status (``sys.exit(run_in_env(uri, argv))`` in a CLI command).

    The environment is built first if needed (installer output to stderr). ``kwargs`` go to
    ``subprocess.run`` (``env=...``, ``cwd=...``); stdin/stdout/stderr are inherited. The child
    sees ``HANGAR_ACTIVE_ENV`` and ``HANGAR_ENV_MANAGER=local`` so that it does not re-execute.
    Use :meth:`EnvManager.run` to capture the output instead.
    """
    manager = EnvManager(settings, index=index, resolver=resolver, stream_output=stream_output)
    return manager.run(model_uri, argv, **kwargs).returncode
