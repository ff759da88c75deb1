"""``hangar store``: copy a whole store to another database, verify a copy, back up SQLite."""

from __future__ import annotations

import contextlib
import sys

import click

from hangar.cli.output import emit_json, json_option, table


def _configured_store() -> str:
    from hangar.config import Settings

    return Settings.from_env().store_uri


def _root_map(ctx, param, values) -> dict[str, str]:
    out = {}
    for v in values:
        old, sep, new = v.partition("=")
        if not sep or not old or not new:
            raise click.BadParameter(f"expected OLD=NEW (two URI prefixes), got {v!r}", ctx=ctx, param=param)
        out[old] = new
    return out


_root_map_option = click.option(
    "--artifact-root-map", "root_map", multiple=True, callback=_root_map, metavar="OLD=NEW",
    help="Rewrite artifact URIs that start with OLD to start with NEW in the target (repeatable), for "
         "artifacts you move too, e.g. /home/me/.hangar/artifacts=s3://bucket/hangar.")


@contextlib.contextmanager
def _progress(enabled: bool):
    """A rich progress bar per table on a terminal (stderr); nothing otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    labels = {"copy": "copying", "verify": "verifying", "source": "reading source", "target": "reading target"}
    with Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(phase: str, name: str, done: int, total: int) -> None:
            if total == 0:
                return
            task = tasks.get(name)
            if task is None:
                tasks[name] = task = bar.add_task("", total=total)
            if done == 0:
                bar.reset(task, total=total)
            bar.update(task, completed=done, description=f"{labels.get(phase, phase)} {name}")

        yield update


def _tables_out(reports) -> None:
    table("tables", ["table", "rows", "rows in target", "verified"],
          [[r.table, f"{r.rows:,}", f"{r.target_rows:,}", "✓" if r.verified else "✗ MISMATCH"] for r in reports])


@click.group()
def store():
    """The metadata store: copy it to another database, verify a copy, back it up."""


@store.command()
@click.option("--from", "source", default=None, metavar="URI",
              help="The store to copy (default: the configured one, HANGAR_TRACKING_URI or HANGAR_HOME/hangar.db).")
@click.option("--to", "target", required=True, metavar="URI", help="An empty database, e.g. postgresql://user@host/hangar.")
@_root_map_option
@json_option
def copy(source, target, root_map, as_json):
    """Copy a whole store (every table, artifact references included) into an empty database, then verify it.

    The source is brought to this Hangar's schema first (upgraded in place if it is older). The copy is
    one transaction on the target: if anything fails, or the verification pass (row count and content
    digest of every table) finds a difference, the target is left with no rows. The artifact files stay
    where they are; --artifact-root-map rewrites the references for files you move yourself.
    """
    from hangar.store.copy import StoreVerificationError, copy_store

    source = source or _configured_store()
    try:
        with _progress(not as_json) as progress:
            report = copy_store(source, target, artifact_root_map=root_map, progress=progress)
    except StoreVerificationError as exc:
        if as_json:
            emit_json(exc.report)
        else:
            _tables_out(exc.report.tables)
        raise
    if as_json:
        return emit_json(report)
    schema = (f"schema {report.source_revision}, upgraded in place to {report.schema_revision} before copying"
              if report.source_upgraded else f"schema {report.schema_revision}, current")
    click.echo(f"source: {report.source} ({schema})")
    click.echo(f"target: {report.target}")
    _tables_out(report.tables)
    click.echo(f"Copied {report.rows:,} rows in {report.seconds:.1f} s; every table verified "
               "(row count and content digest).")
    if report.artifact_root_map:
        maps = ", ".join(f"{o} -> {n}" for o, n in report.artifact_root_map.items())
        click.echo(f"Artifacts: rewrote {report.artifact_uris_rewritten:,} artifact URIs ({maps}). The files were not "
                   "moved: copy them to the new location yourself.")
    else:
        click.echo("Artifacts: references were copied as they are; the files stay where they are, so the target's "
                   "users need access to them (use --artifact-root-map when you move them).")
    if report.skipped_tables:
        click.echo(f"Not copied (not tables of Hangar's schema): {', '.join(report.skipped_tables)}")


@store.command()
@click.option("--from", "source", default=None, metavar="URI", help="The original store (default: the configured one).")
@click.option("--to", "target", required=True, metavar="URI", help="The copy to check.")
@_root_map_option
@json_option
def verify(source, target, root_map, as_json):
    """Compare two stores table by table (row count and content digest); exit 1 on any difference."""
    from hangar.store.copy import StoreVerificationError, verify_store

    with _progress(not as_json) as progress:
        report = verify_store(source or _configured_store(), target, artifact_root_map=root_map, progress=progress)
    if as_json:
        emit_json({"source": report.source, "target": report.target, "verified": report.verified,
                   "tables": report.tables})
    else:
        _tables_out(report.tables)
    if not report.verified:
        raise StoreVerificationError(f"The stores differ in {', '.join(report.mismatched)}", report)
    if not as_json:
        click.echo(f"The stores match: {sum(t.rows for t in report.tables):,} rows in {len(report.tables)} tables.")


@store.command()
@click.argument("dest", metavar="DEST.db")
@click.option("--store", "store_uri", default=None, metavar="URI",
              help="The SQLite store to back up (default: the configured one).")
@click.option("--force", is_flag=True, help="Overwrite DEST.db if it exists.")
@json_option
def backup(dest, store_uri, force, as_json):
    """Back up a SQLite store to DEST.db while it is in use (SQLite's online backup), then check the copy."""
    from hangar.store.backup import backup_sqlite

    report = backup_sqlite(store_uri or _configured_store(), dest, overwrite=force)
    if as_json:
        return emit_json(report)
    click.echo(f"Backed up {report.source} to {report.path}: {_size(report.bytes)}, {report.rows:,} rows in "
               f"{len(report.tables)} tables (schema {report.schema_revision or '-'}), integrity ok, "
               f"row counts match, in {report.seconds:.1f} s.")


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover
