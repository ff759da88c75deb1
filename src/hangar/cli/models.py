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
    """Inspect, verify and run model packages."""


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
