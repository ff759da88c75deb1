"""The demo's batch step: score a small table of prompts with ``@champion`` into Parquet."""

from __future__ import annotations

import time
from pathlib import Path

PROMPTS = (
    "Summarise: revenue grew 12% while costs fell 3%.",
    "Classify the sentiment of: 'the upgrade broke my login'.",
    "Write a one-line welcome message for new users.",
    "Translate 'good morning' into French.",
    "What does an inference table record?",
)


def batch_score(base: Path, max_tokens: int, console, timings: list) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from rich.table import Table

    import hangar.batch

    prompts = base / "batch" / "prompts.parquet"
    output = base / "batch" / "answers"
    prompts.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": list(range(len(PROMPTS))), "prompt": list(PROMPTS)}), prompts)
    started = time.perf_counter()
    result = hangar.batch.run("models:/main.default.assistant@champion", prompts, output, columns=["prompt"],
                              params={"max_tokens": max_tokens}, workers=1, overwrite=True, progress=True,
                              experiment="demo-batch")
    elapsed = time.perf_counter() - started
    timings.append((f"batch: {result.rows} prompts → {output}", elapsed))
    console.print(f"[green]✓[/green] hangar batch scored {result.rows} prompts with {result.model_version} "
                  f"({result.failed} failed, {result.completion_tokens} tokens generated) into {output} "
                  f"[dim]({elapsed:.2f} s; run {result.run_id})[/dim]")
    rows = pq.read_table(output).sort_by("id").to_pylist()
    table = Table(title=f"batch output ({output}, first 3 rows)", show_lines=True)
    for column in ("prompt", "prediction", "model_version", "error"):
        table.add_column(column, max_width=50 if column == "prediction" else 30)
    for row in rows[:3]:
        table.add_row(row["prompt"], (row["prediction"] or "").strip(), row["model_version"], row["error"] or "-")
    console.print(table)
    return rows
