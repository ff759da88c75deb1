"""``hangar env``: the isolated Python environments that model packages run in.

Also home of what other commands share to honour ``--env-manager``: :func:`env_manager_option`
and :func:`reexec_in_env`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

ENV_MANAGER_HELP = (
    "Where the model runs: 'local' (this Python environment) or 'uv' (an isolated virtualenv "
    "built from the package's requirements, cached and shared)."
)


def env_manager_option(default: str = "local"):
    """The ``--env-manager local|uv`` option, for every command that loads a model."""
    return click.option("--env-manager", type=click.Choice(["local", "uv"]), default=default,
                        show_default=True, envvar="HANGAR_ENV_MANAGER", help=ENV_MANAGER_HELP)


def index_options(func):
    """Options that say where packages come from (added to what pip's configuration says)."""
    options = [
        click.option("--index-url", default=None, help="Base URL of the package index (replaces pip's)."),
        click.option("--extra-index-url", "extra_index_urls", multiple=True,
                     help="Another package index (repeatable)."),
        click.option("--find-links", "find_links", multiple=True,
                     help="A directory or page of wheels (repeatable)."),
        click.option("--constraint", "constraints", multiple=True, type=click.Path(dir_okay=False),
                     help="A pip constraints file (repeatable)."),
        click.option("--no-pip-config", is_flag=True,
                     help="Ignore pip's configuration files and PIP_* variables."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _index(index_url, extra_index_urls, find_links, constraints, no_pip_config):
    from hangar.models.env_manager import IndexSettings

    base = IndexSettings() if no_pip_config else IndexSettings.from_pip_config()
    return base.with_overrides(index_url=index_url, extra_index_urls=extra_index_urls,
                               find_links=find_links, constraints=constraints)


def _manager(index, verbose: bool = False):
    from hangar.config import Settings
    from hangar.models.env_manager import EnvManager

    return EnvManager(Settings.from_env(), index=index, stream_output=verbose)


def _err(message: str) -> None:
    click.echo(message, err=True)


def strip_env_manager(argv: Sequence[str]) -> list[str]:
    """``argv`` with the value of its ``--env-manager`` option replaced by ``local``."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == "--env-manager" and i + 1 < len(out):
            out[i + 1] = "local"
        elif arg.startswith("--env-manager="):
            out[i] = "--env-manager=local"
    return out


def reexec_in_env(model_uri: str, env_manager: str, argv: Sequence[str] | None = None) -> None:
    """Call first thing in a command that loads a model. With ``env_manager == "uv"`` (and not
    already inside that environment) it re-runs the command inside the package's environment
    and exits with the child's status; otherwise it returns and the command goes on here.

    ``argv`` is the command line after the program name (default ``sys.argv[1:]``); its
    ``--env-manager`` is replaced by ``local`` in the child.
    """
    from hangar.models.env_manager import inside_managed_env, run_in_env

    if env_manager == "local" or inside_managed_env():
        return
    args = strip_env_manager(sys.argv[1:] if argv is None else argv)
    sys.exit(run_in_env(model_uri, args))


@click.group()
def env():
    """Isolated Python environments for model packages (built with uv, cached by requirements)."""


@env.command("create")
@click.argument("model_uri")
@env_manager_option(default="uv")
@index_options
@click.option("-v", "--verbose", is_flag=True, help="Show the installer's output.")
def create(model_uri, env_manager, index_url, extra_index_urls, find_links, constraints, no_pip_config, verbose):
    """Build (or reuse) the environment MODEL_URI needs; print its path."""
    if env_manager == "local":
        _err("--env-manager local: the model runs in this Python environment; nothing to build.")
        click.echo(sys.prefix)
        return
    import time

    manager = _manager(_index(index_url, extra_index_urls, find_links, constraints, no_pip_config), verbose)
    spec = manager.spec(model_uri)
    target = manager.env_for(spec)
    if target.complete:
        _err(f"Reusing the environment {target.key} (packages with the same requirements share it).")
        click.echo(str(target.path))
        return
    started = time.monotonic()
    if verbose or not sys.stderr.isatty():
        _err(f"Building the environment for {model_uri} (Python {spec.python}, "
             f"{len(spec.requirements)} requirements)...")
        target, built = manager.create(spec)
    else:
        from rich.console import Console

        with Console(stderr=True).status(f"Building the environment for {model_uri}..."):
            target, built = manager.create(spec)
    if built:
        _err(f"Built with {target.info.get('installer', '?')} in {time.monotonic() - started:.1f} s.")
    else:
        _err(f"Another process built it meanwhile; reusing the environment {target.key}.")
    click.echo(str(target.path))


@env.command("path")
@click.argument("model_uri")
@index_options
def path(model_uri, index_url, extra_index_urls, find_links, constraints, no_pip_config):
    """Print the path of the environment MODEL_URI uses (fails if it is not built yet)."""
    manager = _manager(_index(index_url, extra_index_urls, find_links, constraints, no_pip_config))
    target = manager.env_for(model_uri)
    if not target.complete:
        raise click.ClickException(
            f"The environment for {model_uri} is not built yet (it would be {target.path}); "
            f"run: hangar env create {model_uri}")
    click.echo(str(target.path))


@env.command("list")
@click.option("--plain", is_flag=True, help="Tab-separated lines instead of a table.")
def list_envs(plain):
    """List the cached environments."""
    from hangar.config import Settings
    from hangar.models.env_manager import EnvManager, IndexSettings

    envs = EnvManager(Settings.from_env(), index=IndexSettings()).list()
    rows = []
    for e in envs:
        info = e.info
        rows.append([e.key, info.get("python", "?"), str(len(info.get("requirements", []))),
                     "ready" if e.complete else "incomplete", info.get("installer", "?"),
                     info.get("created", "?"), str(e.path)])
    if plain or not sys.stdout.isatty():
        for row in rows:
            click.echo("\t".join(row))
        return
    if not rows:
        _err(f"No environments yet under {Settings.from_env().envs_dir}.")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(Settings.from_env().envs_dir), title_justify="left")
    table.add_column("KEY", no_wrap=True)
    for name in ("PYTHON", "REQS", "STATUS", "INSTALLER"):
        table.add_column(name, no_wrap=True)
    table.add_column("CREATED", overflow="fold")
    for row in rows:
        table.add_row(*row[:6])
    Console().print(table)
