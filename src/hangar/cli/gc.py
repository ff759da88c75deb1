"""``hangar gc``: remove the files of deleted runs, versions and models, and stale caches."""

from __future__ import annotations

import click

from hangar.cli.output import emit_json, json_option, table
from hangar.cli.versions import registry_client

_TITLES = {
    "model_versions": "deleted and failed model versions",
    "runs": "deleted runs",
    "logged_models": "failed logged models, and those of deleted experiments",
    "model_cache": "model cache",
    "environments": "environments",
}


def human_size(n: int) -> str:
    """Bytes in decimal units: 123.4 MB."""
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}"
    return f"{n} B"  # pragma: no cover


@click.command()
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
@click.option("--cache-days", default=30, show_default=True, type=click.FloatRange(min=0),
              help="Remove model cache entries not used for this many days.")
@click.option("--env-days", default=30, show_default=True, type=click.FloatRange(min=0),
              help="Remove environments not used for this many days (unfinished ones always go).")
@json_option
def gc(dry_run, cache_days, env_days, as_json):
    """Remove the files of deleted runs, experiments, model versions and models (their records stay),
    of failed registrations, and cache entries and environments nobody used for a while."""
    from hangar.catalog.gc import collect

    with registry_client() as c:
        report = collect(c, older_than_days_cache=cache_days, older_than_days_envs=env_days, dry_run=dry_run)
    errors = sum(c.errors for c in report.categories)
    if as_json:
        emit_json(report)
    else:
        _print(report, dry_run)
    if errors:
        raise click.ClickException(f"{errors} items could not be removed (see their status)")


def _print(report, dry_run: bool) -> None:
    verb = "would free" if dry_run else "freed"
    if report.expired_version_leases or report.expired_logged_model_leases:
        click.echo(f"{'would mark' if dry_run else 'marked'} FAILED after their lease ran out: "
                   f"{report.expired_version_leases} registrations, {report.expired_logged_model_leases} logged models")
    for cat in report.categories:
        if not cat.items:
            continue
        table(f"{_TITLES.get(cat.name, cat.name)}: {verb} {human_size(cat.bytes)}",
              ["item", "location", "size", "status"],
              [[i.id, i.location, human_size(i.bytes), i.action + (f" ({i.reason})" if i.reason else "")]
               for i in cat.items])
    table("summary", ["category", "items", "skipped", "failed", verb],
          [[_TITLES.get(c.name, c.name), c.removed, c.skipped, c.errors, human_size(c.bytes)]
           for c in report.categories])
    skipped = sum(c.skipped for c in report.categories)
    errors = sum(c.errors for c in report.categories)
    removed = sum(c.removed for c in report.categories)
    extra = "".join([f", skipped {skipped}" if skipped else "", f", {errors} failed" if errors else ""])
    items = f"{removed} item{'' if removed == 1 else 's'}{extra}"
    click.echo(f"{verb} {human_size(report.freed_bytes)} ({items}) in {report.seconds:.1f} s"
               + (" — dry run, nothing was removed" if dry_run else ""))
