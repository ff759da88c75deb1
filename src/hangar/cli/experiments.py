"""``hangar experiments``: list, create, delete and restore experiments."""

from __future__ import annotations

import click

from hangar.cli.output import emit_json, json_option, table, when


def _client():
    from hangar.tracking.client import Client

    return Client()


@click.group()
def experiments():
    """Experiments group the runs of one piece of work."""


@experiments.command("list")
@click.option("--filter", "filter_string", default=None, help="e.g. \"name LIKE 'fraud%'\" or \"tags.team = 'risk'\"")
@click.option("--view", type=click.Choice(["active", "deleted", "all"]), default="active", show_default=True)
@click.option("--max-results", default=100, show_default=True)
@json_option
def list_(filter_string, view, max_results, as_json):
    """List experiments."""
    exps, _ = _client().search_experiments(filter_string, view, max_results)
    if as_json:
        return emit_json(exps)
    table("experiments", ["id", "name", "stage", "created (UTC)", "artifact location"],
          [[e.experiment_id, e.name, e.lifecycle_stage, when(e.creation_time), e.artifact_location] for e in exps])


@experiments.command()
@click.argument("name")
@click.option("--artifact-location", default=None)
@json_option
def create(name, artifact_location, as_json):
    """Create an experiment; prints its id."""
    eid = _client().create_experiment(name, artifact_location)
    emit_json({"experiment_id": eid}) if as_json else click.echo(eid)


@experiments.command()
@click.argument("experiment_id")
def delete(experiment_id):
    """Delete an experiment and its runs (softly: `restore` brings them back)."""
    _client().delete_experiment(experiment_id)
    click.echo(f"deleted experiment {experiment_id}")


@experiments.command()
@click.argument("experiment_id")
def restore(experiment_id):
    """Restore a deleted experiment and its runs."""
    _client().restore_experiment(experiment_id)
    click.echo(f"restored experiment {experiment_id}")
