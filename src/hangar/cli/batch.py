"""``hangar batch``: score a table of inputs with a model and store the predictions."""

from __future__ import annotations

import click

from hangar.cli.models import _read_json_arg


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    return names or None


@click.command()
@click.argument("model_uri")
@click.option("--input", "input_", required=True, help="Parquet/CSV/JSONL file, folder or glob; a Delta table; "
              "or a SQLAlchemy URL (with --query, or URL#table).")
@click.option("--output", required=True, help="A folder of Parquet part files (default), a .jsonl file, a Delta "
              "table (delta:PATH) or a SQLAlchemy URL (with --table, or URL#table).")
@click.option("--columns", help="Comma-separated input columns to give the model (default: all).")
@click.option("--keep-columns", help="Comma-separated input columns to copy to the output, e.g. a key (default: all).")
@click.option("--output-column", default="prediction", show_default=True, help="Name of the prediction column.")
@click.option("--params", help="Model params as JSON text or @file.json.")
@click.option("--workers", type=click.IntRange(1, 512), help="Worker processes (default: the cores available).")
@click.option("--engine", type=click.Choice(["local", "ray", "spark"]), default="local", show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 256),
              help="Rows in flight at once per worker for chat/completion/embedding models (default 8 for the "
              "openai flavor, else 1).")
@click.option("--chunk-rows", type=click.IntRange(1), help="Rows per chunk: the unit of work and of checkpointing.")
@click.option("--query", help="SQL query for a SQL input (give it an ORDER BY so a resumed job sees the same order).")
@click.option("--table", help="Table name for a SQL output.")
@click.option("--input-format", type=click.Choice(["parquet", "csv", "jsonl", "delta", "sql"]),
              help="Input format when the name does not say.")
@click.option("--output-format", type=click.Choice(["parquet", "jsonl", "delta", "sql"]),
              help="Output format when the name does not say.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first row the model fails on (default: record it and go on).")
@click.option("--overwrite", is_flag=True, help="Replace the output of an earlier, different job.")
@click.option("--experiment", default="batch-jobs", show_default=True, help="Experiment that records the job's run.")
@click.option("--no-progress", is_flag=True, help="No progress bar even on a terminal.")
def batch(model_uri, input_, output, columns, keep_columns, output_column, params, workers, engine, concurrency, chunk_rows,
          query, table, input_format, output_format, fail_fast, overwrite, experiment, no_progress):
    """Score every row of --input with MODEL_URI and store the predictions at --output.

    Each output row keeps the input columns and adds the prediction, the model version that made
    it and an error (empty when the row succeeded). Killed and started again with the same
    command, the job resumes where it stopped: every input row ends up in the output exactly once.
    """
    from hangar.batch import run
    from hangar.cli.output import table as print_table

    result = run(model_uri, input_, output, columns=_names(columns), keep_columns=_names(keep_columns),
                 output_column=output_column, params=_read_json_arg(params, "--params"), workers=workers,
                 engine=engine, concurrency=concurrency, chunk_rows=chunk_rows, fail_fast=fail_fast, overwrite=overwrite, query=query,
                 table=table, input_format=input_format, output_format=output_format,
                 progress=False if no_progress else None, experiment=experiment)
    rows = [["output", result.output], ["model version", result.model_version], ["rows", f"{result.rows:,}"],
            ["ok", f"{result.ok:,}"], ["failed", f"{result.failed:,}"],
            ["duration", f"{result.duration_s:.2f} s"], ["throughput", f"{result.rows_per_s:,.0f} rows/s"]]
    if result.resumed_chunks:
        rows.append(["resumed", f"{result.resumed_chunks} of {result.chunks} chunks were already done"])
    if result.prompt_tokens or result.completion_tokens:
        rows.append(["tokens", f"{result.prompt_tokens:,} prompt + {result.completion_tokens:,} completion"])
    if result.run_id:
        rows.append(["run", result.run_id])
    if result.first_error:
        rows.append(["first error", result.first_error[:300]])
    print_table("batch job", ["", "value"], rows)
    if result.failed and result.failed == result.rows:
        raise SystemExit(1)
