"""``hangar runs``: search, show, delete and restore runs."""

from __future__ import annotations

import click

from hangar.cli.output import emit_json, json_option, table, when


def _client():
    from hangar.tracking.client import Client

    return Client()


@click.group()
def runs():
    """Runs: params, metrics, tags, datasets and artifacts of one execution."""


@runs.command("list")
@click.option("--experiment-id", "experiment_ids", multiple=True, default=["0"], show_default=True)
@click.option("--filter", "filter_string", default=None, help="e.g. \"metrics.acc > 0.8 and params.lr = '0.01'\"")
@click.option("--order-by", multiple=True, help="e.g. 'metrics.acc DESC' (repeatable)")
@click.option("--view", type=click.Choice(["active", "deleted", "all"]), default="active", show_default=True)
@click.option("--max-results", default=100, show_default=True)
@json_option
def list_(experiment_ids, filter_string, order_by, view, max_results, as_json):
    """Search runs (newest first unless --order-by says otherwise)."""
    found, _ = _client().search_runs(list(experiment_ids), filter_string, view, max_results, list(order_by) or None)
    if as_json:
        return emit_json(found)
    metric_keys = sorted({k for r in found for k in r.data.metrics})[:4]
    table("runs", ["run id", "name", "status", "started (UTC)"] + [f"metrics.{k}" for k in metric_keys],
          [[r.info.run_id, r.info.run_name, r.info.status, when(r.info.start_time)]
           + [f"{r.data.metrics[k]:.4g}" if k in r.data.metrics else None for k in metric_keys] for r in found])


@runs.command()
@click.argument("run_id")
@json_option
def get(run_id, as_json):
    """Show one run: info, params, latest metrics, tags and datasets."""
    run = _client().get_run(run_id)
    if as_json:
        return emit_json(run)
    i = run.info
    table(f"run {i.run_id}", ["field", "value"], [
        ["name", i.run_name], ["experiment", i.experiment_id], ["status", i.status],
        ["started (UTC)", when(i.start_time)], ["ended (UTC)", when(i.end_time)], ["parent", i.parent_run_id],
        ["artifacts", i.artifact_uri]]
        + [[f"params.{k}", v] for k, v in sorted(run.data.params.items())]
        + [[f"metrics.{k}", v] for k, v in sorted(run.data.metrics.items())]
        + [[f"tags.{k}", v] for k, v in sorted(run.data.tags.items())]
        + [[f"dataset ({d.context or '-'})", f"{d.dataset.name} @{d.dataset.digest}"] for d in run.inputs])


@runs.command()
@click.argument("run_id")
def delete(run_id):
    """Delete a run (softly: `restore` brings it back)."""
    _client().delete_run(run_id)
    click.echo(f"deleted run {run_id}")


@runs.command()
@click.argument("run_id")
def restore(run_id):
    """Restore a deleted run."""
    _client().restore_run(run_id)
    click.echo(f"restored run {run_id}")
