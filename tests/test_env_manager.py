"""Environments for model packages: keys, pip configuration → uv arguments, and a real build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import hangar.pyfunc
from hangar.cli.env import env as env_cli
from hangar.cli.env import strip_env_manager
from hangar.config import Settings
from hangar.models.env_manager import (
    MARKER,
    EnvManager,
    EnvSpec,
    IndexSettings,
    find_uv,
    hangar_source_requirement,
    pip_config_files,
    read_pip_config,
    redact,
    run_in_env,
)

MODEL_CODE = """
from hangar.models import set_model

def {name}(df):
    return [float(v) {op} 1 for v in df["x"]]

set_model({name})
"""


def _save(tmp_path: Path, name: str, op: str = "+") -> Path:
    code = tmp_path / f"{name}.py"
    code.write_text(MODEL_CODE.format(name=name, op=op))
    return hangar.pyfunc.save_model(tmp_path / name, str(code), input_example={"x": [1.0, 2.0]})


def _fake_package(root: Path, requirements: list[str], python: str = "3.11.4") -> Path:
    root.mkdir(parents=True)
    (root / "requirements.txt").write_text("\n".join(requirements) + "\n")
    (root / "python_env.yaml").write_text(
        f"python: {python}\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n")
    return root


# -- keys -----------------------------------------------------------------------------------

def test_key_is_stable():
    spec = EnvSpec(python="3.11", requirements=("numpy==2.0.0", "pandas==2.2.0"), index=IndexSettings())
    # A change here orphans every cached environment: bump ENV_FORMAT on purpose, then update.
    assert spec.key == EnvSpec(python="3.11", requirements=("pandas==2.2.0", "numpy==2.0.0"),
                               index=IndexSettings()).key
    assert spec.key == "17f99fc45edabb0140af3d3b"
    assert len(spec.key) == 24


def test_packages_with_the_same_requirements_share_one_env(tmp_path):
    a, b = _save(tmp_path, "plus_one", "+"), _save(tmp_path, "minus_one", "-")
    assert (a / "MLmodel").read_text() != (b / "MLmodel").read_text()
    manager = EnvManager(Settings(home=tmp_path / "home"), index=IndexSettings())
    assert manager.spec(a) == manager.spec(b)
    assert manager.env_for(a).path == manager.env_for(b).path
    assert manager.env_for(a).path.parent == tmp_path / "home" / "envs"
    assert not manager.env_for(a).complete


def test_key_covers_python_requirements_and_index(tmp_path):
    def key(reqs, python="3.11.4", index=None, hangar="hangar @ file:///src/hangar"):
        root = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        return EnvSpec.for_package(_fake_package(root, reqs, python), index or IndexSettings(),
                                   hangar_requirement=hangar).key

    base = key(["hangar==0.1.0", "numpy==2.0.0", "pandas==2.2.0"])
    assert key(["pandas==2.2.0", "hangar==0.1.0", "numpy==2.0.0"]) == base  # order
    assert key(["hangar==0.1.0", "numpy==2.0.0", "pandas==2.2.0"], python="3.11.9") == base  # patch
    assert key(["hangar==0.0.9", "numpy==2.0.0", "pandas==2.2.0"]) == base  # Hangar from source either way
    assert key(["hangar==0.1.0", "numpy==2.0.1", "pandas==2.2.0"]) != base
    assert key(["hangar==0.1.0", "numpy==2.0.0", "pandas==2.2.0"], python="3.12.1") != base
    assert key(["hangar==0.1.0", "numpy==2.0.0", "pandas==2.2.0"],
               index=IndexSettings(extra_index_urls=("https://mirror.example/simple",))) != base
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch<=2.5\n")
    with_c = key(["numpy==2.0.0"], index=IndexSettings(constraints=(str(constraints),)))
    assert key(["numpy==2.0.0"], index=IndexSettings(constraints=(str(constraints),))) == with_c
    constraints.write_text("torch<=2.6\n")
    assert key(["numpy==2.0.0"], index=IndexSettings(constraints=(str(constraints),))) != with_c


def test_spec_reads_python_env_and_replaces_the_hangar_pin(tmp_path):
    root = _fake_package(tmp_path / "p", ["hangar==0.1.0", "-r extra.txt", "numpy==2.0.0  # pinned"])
    (root / "extra.txt").write_text("pandas==2.2.0\n")
    spec = EnvSpec.for_package(root, hangar_requirement="-e /src/hangar")
    assert spec.python == "3.11"
    assert spec.requirements == tuple(sorted(["-e /src/hangar", "numpy==2.0.0", "pandas==2.2.0", "pip"]))
    kept = EnvSpec.for_package(root, hangar_requirement=None)
    assert "hangar==0.1.0" in kept.requirements


def test_hangar_source_requirement_follows_direct_url():
    import importlib.metadata as md

    text = md.distribution("hangar").read_text("direct_url.json")
    found = hangar_source_requirement()
    if not text:
        assert found is None
        return
    info = json.loads(text)
    if (info.get("dir_info") or {}).get("editable"):
        assert found is not None and found.startswith("-e ")
        assert (Path(found[3:]) / "src" / "hangar").is_dir()
    else:
        assert found is None or found.startswith("hangar @ ")


# -- pip configuration → uv -----------------------------------------------------------------

def test_pip_config_maps_to_uv_args(tmp_path):
    system = tmp_path / "etc-pip.conf"
    system.write_text(textwrap.dedent("""
        [global]
        index-url = https://user:s3cret@mirror.example/simple
        extra-index-url =
            https://extra-one.example/simple
            https://extra-two.example/simple
        find-links = wheels
        constraint = /etc/constraints.txt
        trusted-host = mirror.example
    """))
    user = tmp_path / "user-pip.conf"
    user.write_text("[install]\nfind_links = /opt/wheels /srv/wheels\n[global]\ncert = /etc/ca.pem\n")
    settings = IndexSettings.from_pip_config(environ={"PIP_CONSTRAINT": "/etc/xdg/c.txt"}, files=[system, user])
    assert settings.index_url == "https://user:s3cret@mirror.example/simple"
    assert settings.extra_index_urls == ("https://extra-one.example/simple", "https://extra-two.example/simple")
    assert settings.find_links == ("/opt/wheels", "/srv/wheels")  # [install] beats [global]
    assert settings.constraints == ("/etc/xdg/c.txt",)  # PIP_* beats files
    assert settings.trusted_hosts == ("mirror.example",)
    assert settings.uv_args() == [
        # the index URL carries a password: it goes in uv's environment, not on its command line
        "--extra-index-url", "https://extra-one.example/simple",
        "--extra-index-url", "https://extra-two.example/simple",
        "-f", "/opt/wheels", "-f", "/srv/wheels",
        "-c", "/etc/xdg/c.txt",
        "--allow-insecure-host", "mirror.example",
        "--index-strategy", "unsafe-best-match",
    ]
    assert settings.uv_environ()["UV_INDEX_URL"] == "https://user:s3cret@mirror.example/simple"
    if not os.environ.get("SSL_CERT_FILE"):
        assert settings.uv_environ()["SSL_CERT_FILE"] == "/etc/ca.pem"
    assert "--cert" in settings.pip_args() and "s3cret" not in " ".join(settings.pip_args())
    assert settings.pip_environ() == {"PIP_INDEX_URL": "https://user:s3cret@mirror.example/simple"}
    described = json.dumps(settings.describe())
    assert "s3cret" not in described and "***@mirror.example" in described


def test_relative_find_links_become_absolute_and_overrides_add(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nfind-links = wheels\nno-index = yes\n")
    settings = IndexSettings.from_pip_config(environ={}, files=[conf])
    assert settings.find_links == (str(tmp_path / "wheels"),)
    assert settings.no_index and settings.uv_args()[0] == "--no-index"
    more = settings.with_overrides(index_url="https://other.example/simple", find_links=["/w"],
                                   extra_index_urls=["https://x.example/simple"])
    assert more.index_url == "https://other.example/simple"
    assert more.find_links == (str(tmp_path / "wheels"), "/w")
    assert more.extra_index_urls == ("https://x.example/simple",)


def test_pip_config_file_locations(tmp_path):
    environ = {"HOME": str(tmp_path), "XDG_CONFIG_DIRS": "/a:/b", "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    files = pip_config_files(environ)
    if sys.platform.startswith("linux"):
        assert files[:3] == [Path("/a/pip/pip.conf"), Path("/b/pip/pip.conf"), Path("/etc/pip.conf")]
        assert tmp_path / "cfg" / "pip" / "pip.conf" in files
    assert pip_config_files({**environ, "PIP_CONFIG_FILE": os.devnull}) == []
    own = tmp_path / "mine.conf"
    own.write_text("[global]\nindex-url = https://only.example/simple\n")
    files = pip_config_files({**environ, "PIP_CONFIG_FILE": str(own)})
    assert files[-1] == own and tmp_path / "cfg" / "pip" / "pip.conf" not in files  # pip skips user files


def test_agrees_with_pip_config_list():
    """What we read equals what ``pip config list`` reports on this machine, for the keys we map."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("pip is not available")
    merged = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        merged[key] = value.strip().strip("'\"")
    expected = {}
    for section in ("global", "install", ":env:"):
        for key, value in merged.items():
            sec, _, name = key.partition(".")
            if sec == section and value:
                expected[name] = value
    ours = read_pip_config()
    for name in ("index-url", "extra-index-url", "find-links", "constraint", "no-index", "trusted-host"):
        assert ours.get(name) == expected.get(name), name


def test_redact():
    assert redact("https://u:tok@h.example/simple") == "https://***@h.example/simple"
    assert redact("https://h.example/simple") == "https://h.example/simple"
    assert redact("/opt/wheels") == "/opt/wheels"


# -- CLI without building -------------------------------------------------------------------

def test_cli_path_and_list_before_building(tmp_path, monkeypatch):
    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    pkg = _save(tmp_path, "plus_one")
    runner = CliRunner()
    result = runner.invoke(env_cli, ["path", str(pkg), "--no-pip-config"])
    assert result.exit_code == 1 and "not built yet" in result.output
    result = runner.invoke(env_cli, ["list", "--plain"])
    assert result.exit_code == 0 and result.output == ""
    result = runner.invoke(env_cli, ["create", str(pkg), "--env-manager", "local"])
    assert result.exit_code == 0 and sys.prefix in result.output


def test_strip_env_manager():
    assert strip_env_manager(["models", "predict", "m", "--env-manager", "uv", "-i", "x.json"]) == \
        ["models", "predict", "m", "--env-manager", "local", "-i", "x.json"]
    assert strip_env_manager(["predict", "--env-manager=uv", "m"]) == ["predict", "--env-manager=local", "m"]
    assert strip_env_manager(["predict", "--", "--env-manager", "uv"]) == ["predict", "--", "--env-manager", "uv"]


# -- a real build ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(find_uv() is None, reason="uv is not installed")
def test_create_env_with_uv_and_predict_inside(tmp_path):
    home = tmp_path / "home"
    environ = {**os.environ, "HANGAR_HOME": str(home)}
    pkg = _save(tmp_path, "plus_one")

    # two `hangar env create` at once: one builds, the other waits on the lock and reuses it
    cmd = [sys.executable, "-m", "hangar.cli.main", "env", "create", str(pkg)]
    started = time.monotonic()
    procs = [subprocess.Popen(cmd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    elapsed = time.monotonic() - started
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    paths = {out.strip().splitlines()[-1] for out, _ in results}
    assert len(paths) == 1
    env_path = Path(paths.pop())
    assert env_path.parent == home / "envs" and (env_path / MARKER).is_file()
    print(f"env created in {elapsed:.1f} s")

    manager = EnvManager(Settings(home=home))
    env = manager.env_for(pkg)
    assert env.path == env_path and env.complete
    assert env.info["installer"] == "uv"

    # predict inside the environment's own interpreter
    script = ("import json, sys, importlib.util, hangar.pyfunc; "
              "m = hangar.pyfunc.load_model(sys.argv[1]); "
              "print(json.dumps({'prefix': sys.prefix, 'out': list(m.predict({'x': [1.0, 5.5]})), "
              "'sklearn': importlib.util.find_spec('sklearn') is not None}))")
    out = subprocess.run([str(env.python), "-c", script, str(pkg)], capture_output=True, text=True,
                         env=env.environ(environ), timeout=120)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["out"] == [2.0, 6.5]
    assert Path(answer["prefix"]).resolve() == env_path.resolve()
    assert answer["sklearn"] is False  # isolated: only what the package needs

    # the re-exec helpers run Hangar's CLI inside it
    proc = manager.run(pkg, ["--version"], capture_output=True, text=True, env=environ)
    assert proc.returncode == 0 and "version" in proc.stdout
    assert run_in_env(pkg, ["--version"], settings=Settings(home=home), env=environ) == 0
    assert run_in_env(pkg, ["no-such-command"], settings=Settings(home=home), env=environ,
                      stderr=subprocess.DEVNULL) != 0

    # an environment whose build was interrupted (no marker) is rebuilt, not used
    (env_path / MARKER).unlink()
    (env_path / "half-written").write_text("")
    assert manager.ensure(pkg).complete
    assert not (env_path / "half-written").exists()

    listed = subprocess.run([sys.executable, "-m", "hangar.cli.main", "env", "list", "--plain"],
                            env=environ, capture_output=True, text=True)
    assert env.key in listed.stdout and "ready" in listed.stdout


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(find_uv() is None, reason="uv is not installed")
def test_serve_inside_the_package_environment(tmp_path):
    """`hangar serve --env-manager uv`: the server runs on the package's own interpreter, with
    Hangar's serving extra installed there."""
    import socket

    import httpx
    import psutil

    home = tmp_path / "home"
    environ = {**os.environ, "HANGAR_HOME": str(home)}
    pkg = _save(tmp_path, "plus_one")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "serve", str(pkg), "--port", str(port),
                             "--env-manager", "uv"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert proc.poll() is None, proc.stdout.read()
        r = httpx.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": {"x": [1.0, 5.5]}}, timeout=10)
        assert r.status_code == 200 and r.json()["predictions"] == [2.0, 6.5]
        server = [p for p in psutil.Process(proc.pid).children(recursive=True) if "hangar.cli.main" in " ".join(p.cmdline())]
        assert not server, "the server replaced the launcher (exec): no child left behind on SIGTERM"
        assert psutil.Process(proc.pid).cmdline()[0].startswith(str(home / "envs"))
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
