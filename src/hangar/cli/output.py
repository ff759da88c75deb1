"""Printing for every noun: a rich table for people, ``--json`` for scripts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def emit_json(data) -> None:
    click.echo(json.dumps(_plain(data), indent=2, default=str))


def when(ms: int | None) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(title: str, columns: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[str(x) if x is not None else "-" for x in r])
    Console().print(t)
