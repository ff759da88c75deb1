"""``hangar endpoints``: named real-time deployments kept in the metadata store."""

from __future__ import annotations

import click

from hangar.cli.output import emit_json, json_option, table, when


def _store():
    from hangar.serving.endpoint_store import endpoint_store

    return endpoint_store()


def _show(ep) -> None:
    table(f"endpoint {ep.name} (revision {ep.revision})", ["served entity", "model", "weight", "batching"],
          [[e.name, e.model, f"{e.weight:g}",
            (f"max {e.max_batch_size} rows / {e.max_wait_ms:g} ms" if e.batching else "off")
            + (f", {e.threads} threads" if e.threads else "")]
           for e in ep.config.served_entities])
    c = ep.config
    limits = c.limits
    rows = [["alias poll", f"every {c.alias_poll_seconds:g} s"],
            ["rate limit", f"{limits.rate_per_minute}/min per caller" if limits.rate_per_minute else "none"],
            ["rate limit store", "redis (shared by all workers)" if c.rate_limit_redis else "per worker"],
            ["max payload", f"{limits.max_payload_bytes:,} bytes"], ["request timeout", f"{limits.request_timeout_s:g} s"],
            ["max queue", str(limits.max_queue)], ["secrets", ", ".join(sorted(c.secrets)) or "none"],
            ["inference table", (c.inference_table.parquet or c.inference_table.sql) if c.inference_table else "off"],
            ["updated", f"{when(ep.updated_at)} by {ep.updated_by}"]]
    table("settings", ["", "value"], rows)


@click.group()
def endpoints():
    """Endpoints: served models by alias or version, traffic split, limits, inference table.

    Kept in the metadata store, or on the Hangar server that HANGAR_TRACKING_URI names (then the
    creator owns the endpoint, QUERY reads it and MANAGE changes or deletes it)."""


def _write(name: str, config_path: str, as_json: bool, create: bool) -> None:
    from hangar.serving.endpoint_config import load_config_file

    store = _store()
    config = load_config_file(config_path)
    ep = store.create(name, config) if create else store.update(name, config)
    if as_json:
        return emit_json({"name": ep.name, "revision": ep.revision, "config": ep.config.to_dict()})
    if create:
        click.echo(f"created endpoint {ep.name}; serve it with: hangar endpoints serve {ep.name}")
    else:
        click.echo(f"updated endpoint {ep.name} (revision {ep.revision})")


_config_option = click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
                              help="Endpoint YAML.")


@endpoints.command()
@click.argument("name")
@_config_option
@json_option
def create(name, config_path, as_json):
    """Create endpoint NAME from a YAML config."""
    _write(name, config_path, as_json, create=True)


@endpoints.command()
@click.argument("name")
@_config_option
@json_option
def update(name, config_path, as_json):
    """Replace NAME's config; running servers apply it live (at their next poll)."""
    _write(name, config_path, as_json, create=False)


@endpoints.command()
@click.argument("name")
@json_option
def get(name, as_json):
    """Show endpoint NAME."""
    ep = _store().get(name)
    if as_json:
        return emit_json({"name": ep.name, "revision": ep.revision, "config": ep.config.to_dict(),
                          "created_by": ep.created_by, "created_at": ep.created_at, "updated_by": ep.updated_by,
                          "updated_at": ep.updated_at})
    _show(ep)


@endpoints.command("list")
@json_option
def list_(as_json):
    """All endpoints."""
    eps = _store().list()
    if as_json:
        return emit_json([{"name": e.name, "revision": e.revision, "config": e.config.to_dict()} for e in eps])
    table("endpoints", ["name", "revision", "served entities", "updated (UTC)"],
          [[e.name, e.revision, ", ".join(f"{s.model} ({s.weight:g})" for s in e.config.served_entities),
            when(e.updated_at)] for e in eps])


@endpoints.command()
@click.argument("name")
@json_option
def delete(name, as_json):
    """Delete endpoint NAME; running servers then answer its requests with 404."""
    _store().delete(name)
    if as_json:
        return emit_json({"deleted": name})
    click.echo(f"deleted endpoint {name}")


@endpoints.command()
@click.argument("name")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes; each loads every served entity once and follows the aliases itself.")
@click.option("--no-auth", is_flag=True, help="Let callers in without a token (only on a loopback address).")
@click.option("--insecure", is_flag=True, help="Allow --no-auth on an address other machines can reach.")
@click.option("--access-log", is_flag=True, help="Log one line per request (costs throughput).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(name, host, port, workers, no_auth, insecure, access_log, log_level):
    """Serve endpoint NAME: its served entities by weight, following their aliases.

    Answers with X-Hangar-Served-By (the version) and X-Request-Id; a request that sends
    X-Request-Id always reaches the same entity. An update to NAME's config is applied live, with
    no request dropped; once NAME is deleted, requests get 404. Callers need a bearer token whose principal holds
    QUERY on the endpoint (hangar grants add endpoint NAME QUERY PRINCIPAL) unless --no-auth. With
    HANGAR_TRACKING_URI=http://... everything goes through that Hangar server, which also checks the callers' tokens.
    SIGTERM drains in-flight requests and the inference table, then exits.
    """
    from hangar.governance.authn import check_auth_choice
    from hangar.serving.endpoint_runtime import serve_endpoint

    check_auth_choice(host, no_auth, insecure, consequence="query this endpoint with no token")
    serve_endpoint(name, host=host, port=port, workers=workers, log_level=log_level, access_log=access_log,
                   auth=not no_auth)
