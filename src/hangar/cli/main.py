"""Entry point of the ``hangar`` command. Each noun lives in its own module."""

from __future__ import annotations

import importlib
import sys

import click

from hangar.__about__ import __version__

# noun -> module:attribute of its click group or command
_COMMANDS = {
    "env": "hangar.cli.env:env",
    "experiments": "hangar.cli.experiments:experiments",
    "runs": "hangar.cli.runs:runs",
    "models": "hangar.cli.models:models",
    "demo": "hangar.cli.demo:demo",
    "audit": "hangar.cli.audit:audit",
    "lineage": "hangar.cli.lineage:lineage",
    "store": "hangar.cli.store:store",
    "catalogs": "hangar.cli.catalogs:catalogs",
    "schemas": "hangar.cli.schemas:schemas",
    "versions": "hangar.cli.versions:versions",
    "aliases": "hangar.cli.aliases:aliases",
    "gc": "hangar.cli.gc:gc",
    "serve": "hangar.cli.serve:serve",
    "batch": "hangar.cli.batch:batch",
    "endpoints": "hangar.cli.endpoints:endpoints",
    "server": "hangar.cli.server:server",
    "auth": "hangar.cli.auth:auth",
    "principals": "hangar.cli.principals:principals",
    "grants": "hangar.cli.grants:grants",
}


# Exit codes scripts can rely on: 0 success, 1 a Hangar error (bad input, conflict, ...),
# 2 a usage error (click's), 3 the thing named does not exist.
EXIT_ERROR = 1
EXIT_NOT_FOUND = 3


class _LazyGroup(click.Group):
    """Imports a noun's module only when that noun is used (keeps `hangar --help` fast)."""

    def list_commands(self, ctx):
        return sorted(_COMMANDS)

    def get_command(self, ctx, name):
        target = _COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="hangar")
def cli():
    """Hangar: package, track, register, govern, deploy and monitor models."""


def main(argv=None):
    from hangar.errors import HangarError

    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HangarError as exc:
        from hangar.errors import NotFoundError

        click.echo(f"Error [{exc.error_code}]: {exc.message}", err=True)
        sys.exit(EXIT_NOT_FOUND if isinstance(exc, NotFoundError) else EXIT_ERROR)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug, not bad input: say so in one line, traceback on request
        import os

        if os.environ.get("HANGAR_DEBUG"):
            raise
        click.echo(f"Internal error: {type(exc).__name__}: {exc}. This is a bug in Hangar; rerun with "
                   "HANGAR_DEBUG=1 for the traceback and report it.", err=True)
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":  # pragma: no cover
    main()
