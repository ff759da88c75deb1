"""``hangar models``: look inside, verify and run model packages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _read_json_arg(value: str | None, what: str):
    if value is None:
        return None
    from hangar.errors import InvalidArgumentError

    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"{what} is not valid JSON ({exc}); pass JSON text or @file.json") from None


@click.group()
def models():
    """Registered models (list, get, create, delete, tag) and packages (inspect, verify, predict)."""


@models.command()
@click.argument("model_uri")
def inspect(model_uri):
    """Show a package's flavors, task, signature and files."""
    from rich.console import Console
    from rich.table import Table

    from hangar.models.package import open_package
    from hangar.models.resolver import resolve_model_uri
    from hangar.models.signature import describe_type

    path = resolve_model_uri(model_uri)
    m = open_package(path, verify=False)
    console = Console()
    info = Table(show_header=False, title=str(path))
    for key, value in (("model_uuid", m.model_uuid), ("created (UTC)", m.utc_time_created),
                       ("hangar_version", m.hangar_version), ("format_version", m.format_version),
                       ("flavors", ", ".join(m.flavors)), ("task", m.task or "-"),
                       ("size", f"{(m.model_size_bytes or 0) / 1e6:.2f} MB")):
        info.add_row(key, str(value))
    console.print(info)
    sig = m.signature
    if sig is not None:
        table = Table(title="signature")
        for col in ("part", "name", "type", "required / default"):
            table.add_column(col)
        for part, schema in (("input", sig.inputs), ("output", sig.outputs)):
            for c in (schema.columns if schema else ()):
                table.add_row(part, str(c.name if c.name is not None else "-"), describe_type(c.type), str(c.required))
        for p in (sig.params.params if sig.params else ()):
            table.add_row("param", p.name, p.type + ("[]" if p.shape else ""), json.dumps(p.default))
        console.print(table)


@models.command()
@click.argument("model_uri")
def verify(model_uri):
    """Check every file of a package against its checksum."""
    from hangar.models.package import open_package
    from hangar.models.resolver import resolve_model_uri

    path = resolve_model_uri(model_uri)
    m = open_package(path, verify=True)
    click.echo(f"OK: {len(m.checksums or {})} files match their checksums in {path}")


@models.command()
@click.argument("model_uri")
@click.option("--input", "input_", required=True, help="JSON input (or @file.json): rows, columns or a payload.")
@click.option("--params", default=None, help="JSON object of params (or @file.json).")
@click.option("--stream", is_flag=True, help="Print chunks as predict_stream yields them.")
@click.option("--env-manager", type=click.Choice(["local", "uv"]), default="local", show_default=True,
              help="local: this Python; uv: the package's own cached virtualenv.")
def predict(model_uri, input_, params, stream, env_manager):
    """Load a package and print its prediction as JSON."""
    if env_manager == "uv":
        from hangar.models.env_manager import run_in_env

        argv = ["models", "predict", model_uri, "--input", input_] + (["--params", params] if params else [])
        sys.exit(run_in_env(model_uri, argv + (["--stream"] if stream else [])))

    import hangar.pyfunc as hp
    from hangar.models.llm_payloads import chunk_text

    data = _read_json_arg(input_, "--input")
    p = _read_json_arg(params, "--params")
    model = hp.load_model(model_uri)
    if stream:
        for chunk in model.predict_stream(data, params=p):
            click.echo(chunk_text(chunk), nl=False)
        click.echo()
        return
    result = model.predict(data, params=p)
    if hasattr(result, "to_dict") and hasattr(result, "columns"):
        result = result.to_dict(orient="records")
    elif hasattr(result, "tolist"):
        result = result.tolist()
    click.echo(json.dumps(result, default=str))


# -- registered models (the registry) ----------------------------------------------------------

def _model_rows(found) -> list[list]:
    from hangar.cli.output import when

    return [[m.full_name, m.last_version, ", ".join(f"@{a}={v}" for a, v in sorted(m.aliases.items())) or None,
             ", ".join(f"{k}={v}" for k, v in sorted(m.tags.items())) or None, m.owner, when(m.updated_at), m.comment]
            for m in found]


@models.command("list")
@click.option("--catalog", default=None)
@click.option("--schema", default=None)
@click.option("--name-like", default=None, help="SQL LIKE pattern on the full name, e.g. 'main.support.%'.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only models with this tag (repeatable).")
@click.option("--alias", default=None, help="Only models that have this alias.")
@click.option("--max-results", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_registered(catalog, schema, name_like, tags, alias, max_results, as_json):
    """List registered models."""
    from hangar.cli.output import emit_json, table
    from hangar.cli.versions import parse_tags, registry_client

    with registry_client() as c:
        found = c.search_registered_models(catalog, schema, name_like, parse_tags(tags, "--tag") or None, alias,
                                           max_results)
    if as_json:
        return emit_json(found)
    table("registered models", ["name", "latest", "aliases", "tags", "owner", "updated (UTC)", "comment"],
          _model_rows(found))


@models.command()
@click.argument("name")
@click.option("--versions", "n_versions", default=5, show_default=True, type=click.IntRange(0, 10_000),
              help="How many of the newest versions to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def get(name, n_versions, as_json):
    """Show a registered model: comment, tags, aliases and its newest versions."""
    from hangar.cli.output import emit_json, table, when
    from hangar.cli.versions import VERSION_COLUMNS, registry_client, version_rows

    with registry_client() as c:
        m = c.get_registered_model(name)
        latest = c.search_model_versions(m.full_name)[:n_versions]
    if as_json:
        return emit_json({"model": m, "latest_versions": latest})
    table(m.full_name, ["field", "value"], [
        ["comment", m.comment], ["owner", m.owner], ["latest version", m.last_version],
        ["created (UTC)", when(m.created_at)], ["updated (UTC)", when(m.updated_at)]]
        + [[f"@{a}", f"version {v}"] for a, v in sorted(m.aliases.items())]
        + [[f"tags.{k}", v] for k, v in sorted(m.tags.items())])
    if latest:
        table(f"latest versions of {m.full_name}", VERSION_COLUMNS, version_rows(latest))


@models.command()
@click.argument("name")
@click.option("--comment", default=None)
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def create(name, comment, tags, as_json):
    """Create a registered model (a bare NAME lives in main.default)."""
    from hangar.cli.output import emit_json
    from hangar.cli.versions import parse_tags, registry_client

    with registry_client() as c:
        m = c.create_registered_model(name, comment, parse_tags(tags, "--tag") or None)
    if as_json:
        return emit_json(m)
    click.echo(f"created model {m.full_name}")


@models.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Also remove its aliases.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def delete(name, force, as_json):
    """Delete a registered model and its versions (refused while it has aliases, unless --force);
    `hangar gc` removes the files. Its name is never reused."""
    from hangar.cli.output import emit_json
    from hangar.cli.versions import force_hint, registry_client

    with registry_client() as c, force_hint():
        full = c.get_registered_model(name).full_name
        c.delete_registered_model(full, force=force)
    if as_json:
        return emit_json({"deleted": full})
    click.echo(f"deleted model {full}")


@models.command()
@click.argument("name")
@click.argument("key")
@click.argument("value")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def tag(name, key, value, as_json):
    """Set the tag KEY to VALUE on a registered model."""
    from hangar.cli.output import emit_json
    from hangar.cli.versions import registry_client

    with registry_client() as c:
        c.set_registered_model_tag(name, key, value)
        m = c.get_registered_model(name)
    if as_json:
        return emit_json(m)
    click.echo(f"tagged {m.full_name}: {key}={value}")
