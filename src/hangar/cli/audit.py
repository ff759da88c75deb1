"""``hangar audit``: list the audit log, verify its hash chain, print its head as an anchor."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import time

import click

from hangar.cli.output import emit_json, json_option, table, when

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@contextlib.contextmanager
def _connection():
    from hangar.tracking.client import Client

    store = Client().store
    try:
        with store.engine.connect() as conn:
            yield conn
    finally:
        store.close()


@contextlib.contextmanager
def _client():
    from hangar.catalog.client import Client

    c = Client()
    try:
        yield c
    finally:
        c.store.close()


def parse_time(value: str, now_ms: int | None = None) -> int:
    """Milliseconds since the epoch for '1h', '7d', '30m', '2w', '45s' (ago), an ISO date or time
    (UTC unless it names an offset) or a number of milliseconds."""
    text = value.strip()
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if m := _RELATIVE.match(text):
        return now_ms - int(m[1]) * _SECONDS[m[2]] * 1000
    if text.isdigit() and len(text) > 8:
        return int(text)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use a duration ago (30m, 1h, 7d, 2w), an ISO time "
                                 "(2025-01-31 or 2025-01-31T12:00:00+02:00) or epoch milliseconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


class _Time(click.ParamType):
    name = "TIME"

    def convert(self, value, param, ctx):
        return value if isinstance(value, int) else parse_time(value)


@click.group()
def audit():
    """Audit log: who changed or loaded what, when, with what outcome (tamper-evident)."""


@audit.command("list")
@click.option("--securable", default=None, help="A securable and everything beneath it, e.g. main.support.assistant")
@click.option("--action", default=None, help="e.g. SET_ALIAS, LOAD_MODEL")
@click.option("--actor", default=None)
@click.option("--since", type=_Time(), default=None, help="e.g. 1h, 7d, 2025-01-31, 2025-01-31T12:00:00Z")
@click.option("--until", type=_Time(), default=None, help="same forms as --since (exclusive)")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--oldest-first", is_flag=True, help="Print in the order the records were written.")
@json_option
def list_(securable, action, actor, since, until, limit, oldest_first, as_json):
    """List audit records, newest first."""
    with _client() as c:  # the local store, or a server (HANGAR_TRACKING_URI=http://...)
        found = c.list_audit(under=securable, action=action, actor=actor, since_ms=since, until_ms=until,
                             limit=limit, descending=not oldest_first)
    if as_json:
        return emit_json(found)
    table("audit log", ["seq", "time (UTC)", "actor", "action", "securable", "outcome", "details"],
          [[r.seq, when(r.at), r.actor, r.action, f"{r.securable_type} {r.securable}", r.outcome,
            json.dumps(r.details, sort_keys=True) if r.details else None] for r in found])


@audit.command()
@click.option("--anchor", default=None, metavar="SEQ:HASH",
              help="A head printed earlier by `hangar audit anchor`: also catches records deleted from the end.")
@json_option
def verify(anchor, as_json):
    """Recompute every record's hash and check every link; exit 1 if the log was altered."""
    with _client() as c:
        result = c.verify_audit(anchor)
    if as_json:
        emit_json(result)
    elif result.ok:
        head = f"head seq {result.head_seq} {result.head_hash}" if result.head_seq is not None else "empty"
        click.echo(f"audit log intact: {result.records} records, {head}")
        if anchor is None:
            click.echo("(records deleted from the end are caught only with --anchor: keep `hangar audit anchor` "
                       "output somewhere else)")
    if not result.ok:  # exit status 1, the message on stderr
        raise click.ClickException(f"audit log BROKEN at seq {result.first_bad_seq}: {result.problem} "
                                   f"({result.records} records verified before it)")


@audit.command()
@json_option
def anchor(as_json):
    """Print the log's head as SEQ:HASH, to keep outside the database for `verify --anchor`."""
    from hangar.catalog import audit as log

    with _connection() as conn:
        head = log.anchor(conn)
    if as_json:
        return emit_json({"seq": head.seq, "hash": head.hash})
    click.echo(str(head))
