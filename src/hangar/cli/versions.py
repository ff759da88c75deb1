"""``hangar versions``: register, list, show, annotate and delete model versions.

Also home of what the registry commands share: :func:`registry_client` and :func:`tag_option`.
"""

from __future__ import annotations

import contextlib

import click

from hangar.cli.output import emit_json, json_option, table, when


@contextlib.contextmanager
def registry_client():
    """``hangar.catalog.client.Client()`` (HANGAR_TRACKING_URI or HANGAR_HOME), closed afterwards."""
    from hangar.catalog.client import Client

    client = Client()
    try:
        yield client
    finally:
        client.store.close()


def parse_tags(values, option: str = "--tag") -> dict[str, str]:
    """``("k=v", ...)`` as a dict; a usage error (exit 2) for an item without '='."""
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.UsageError(f"{option} expects KEY=VALUE, got {value!r}")
        out[key] = val
    return out


def _tags(ctx, param, values) -> dict[str, str]:
    return parse_tags(values, "--" + param.name.rstrip("s") if param is not None else "--tag")


@contextlib.contextmanager
def force_hint():
    """Name the command line's --force in a refusal the Python API words as force=True."""
    from hangar.errors import ConflictError

    try:
        yield
    except ConflictError as exc:
        if "force=True" not in exc.message:
            raise
        raise ConflictError(exc.message.replace("pass force=True", "pass --force")) from None


def tag_option(help_text: str = "A tag KEY=VALUE (repeatable)."):
    return click.option("--tag", "tags", multiple=True, callback=_tags, metavar="KEY=VALUE", help=help_text)


def version_rows(found) -> list[list]:
    return [[v.version, v.status + (" (deleted)" if v.deleted else ""), ", ".join("@" + a for a in v.aliases) or None,
             when(v.created_at), v.created_by, v.source, v.comment] for v in found]


VERSION_COLUMNS = ["version", "status", "aliases", "created (UTC)", "by", "source", "comment"]


def show_version(mv) -> None:
    table(f"{mv.full_name} version {mv.version}", ["field", "value"], [
        ["uri", mv.model_uri], ["status", mv.status + (" (deleted)" if mv.deleted else "")],
        ["status message", mv.status_message], ["aliases", ", ".join("@" + a for a in mv.aliases) or None],
        ["source", mv.source], ["logged model", mv.logged_model_id], ["run", mv.run_id],
        ["storage", mv.storage_location], ["created (UTC)", when(mv.created_at)], ["created by", mv.created_by],
        ["updated (UTC)", when(mv.updated_at)], ["comment", mv.comment],
        ["files", len(mv.checksums or {})]]
        + [[f"tags.{k}", v] for k, v in sorted(mv.tags.items())])


@click.group()
def versions():
    """Model versions: immutable, numbered packages of a registered model."""


@versions.command()
@click.argument("model_uri")
@click.argument("name")
@click.option("--comment", default=None)
@tag_option()
@json_option
def register(model_uri, name, comment, tags, as_json):
    """Register MODEL_URI (a package path, models:/<logged-model-id> or runs:/<run-id>/<name>) as a new
    version of NAME (created in its schema if new); prints the new version."""
    with registry_client() as c:
        mv = c.register_model(model_uri, name, comment=comment, tags=tags or None)
    if as_json:
        return emit_json(mv)
    click.echo(f"Registered {mv.full_name} version {mv.version} ({mv.status}): {mv.model_uri}")


@versions.command("list")
@click.argument("name")
@click.option("--status", type=click.Choice(["PENDING", "READY", "FAILED"]), default=None)
@click.option("--include-deleted", is_flag=True, help="Also list deleted versions.")
@json_option
def list_(name, status, include_deleted, as_json):
    """List the versions of NAME, newest first."""
    with registry_client() as c:
        full = c.get_registered_model(name).full_name
        found = c.search_model_versions(full, status=status, include_deleted=include_deleted)
    if as_json:
        return emit_json(found)
    table(f"versions of {full}", VERSION_COLUMNS, version_rows(found))


@versions.command()
@click.argument("name")
@click.argument("version")
@json_option
def get(name, version, as_json):
    """Show one version: status, aliases, source, storage, tags."""
    with registry_client() as c:
        mv = c.get_model_version(name, version)
    if as_json:
        return emit_json(mv)
    show_version(mv)


@versions.command()
@click.argument("name")
@click.argument("version")
@click.option("--force", is_flag=True, help="Also remove the aliases that point at it.")
@json_option
def delete(name, version, force, as_json):
    """Delete a version (refused while an alias points at it, unless --force); `hangar gc` removes its files.
    Its number is never reused."""
    with registry_client() as c, force_hint():
        full = c.get_registered_model(name).full_name
        c.delete_model_version(full, version, force=force)
    if as_json:
        return emit_json({"deleted": {"name": full, "version": int(version)}})
    click.echo(f"deleted {full} version {version}")


@versions.command()
@click.argument("name")
@click.argument("version")
@click.argument("key")
@click.argument("value")
@json_option
def tag(name, version, key, value, as_json):
    """Set the tag KEY to VALUE on a version."""
    with registry_client() as c:
        c.set_model_version_tag(name, version, key, value)
        mv = c.get_model_version(name, version)
    if as_json:
        return emit_json(mv)
    click.echo(f"tagged {mv.full_name} version {mv.version}: {key}={value}")


@versions.command()
@click.argument("name")
@click.argument("version")
@click.argument("text")
@json_option
def comment(name, version, text, as_json):
    """Set a version's comment (the only part of a version that can change)."""
    with registry_client() as c:
        mv = c.update_model_version(name, version, text)
    if as_json:
        return emit_json(mv)
    click.echo(f"commented {mv.full_name} version {mv.version}")
