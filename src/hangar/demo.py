"""The main job on embedded defaults: package a local LLM behind a prompt as a chat chain,
load it back, and answer questions, printing every step's time.

Everything lands under ``HANGAR_HOME`` (default ``~/.hangar``) so a newcomer can look at what
it made; a rerun reuses the converted model and the packages.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from hangar.config import Settings

QUESTIONS = (
    "What is a model registry, in one sentence?",
    "Name two things to check before deploying a chatbot.",
    "What is the capital of France?",
)
SYSTEM_PROMPT = "You are a helpful assistant for {{product}}. Answer briefly and plainly."
MAX_TOKENS = 64


@contextmanager
def _step(console, timings: list, label: str):
    started = time.perf_counter()
    with console.status(f"{label}..."):
        yield
    elapsed = time.perf_counter() - started
    timings.append((label, elapsed))
    console.print(f"[green]✓[/green] {label} [dim]({elapsed:.2f} s)[/dim]")


def _convert(console, gguf: Path, out: Path) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from hangar.models.gguf_convert import convert_gguf_to_transformers

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("converting GGUF", total=1.0)

        def report(stage: str, fraction: float) -> None:
            bar.update(task, completed=fraction, description=f"converting GGUF: {stage}")

        convert_gguf_to_transformers(gguf, out, progress=report)


def run_demo(settings: Settings, questions=QUESTIONS, max_tokens: int = MAX_TOKENS, console=None) -> list[dict]:
    from rich.console import Console
    from rich.table import Table

    import hangar.chain as hc
    import hangar.pyfunc as hp
    import hangar.transformers as hangar_transformers
    from hangar.models.gguf_convert import find_smollm2_gguf

    console = console or Console()
    from hangar.store.transactions import now_ms

    started_ms = now_ms()
    base = settings.home / "demo"
    hf_dir = settings.cache_dir / "smollm2-135m-instruct-hf"
    llm_pkg = base / "assistant-llm"
    timings: list = []
    console.print(f"[bold]Hangar demo[/bold] — everything is kept under {settings.home}")

    if not hf_dir.exists():
        gguf = find_smollm2_gguf()
        started = time.perf_counter()
        _convert(console, gguf, hf_dir)
        elapsed = time.perf_counter() - started
        timings.append(("convert SmolLM2-135M GGUF → safetensors (once)", elapsed))
        console.print(f"[green]✓[/green] converted {gguf.name} → {hf_dir} [dim]({elapsed:.2f} s)[/dim]")
    else:
        console.print(f"[green]✓[/green] converted model cached at {hf_dir}")

    if not llm_pkg.exists():
        with _step(console, timings, f"package the LLM (transformers flavor) at {llm_pkg}"):
            hangar_transformers.save_model(llm_pkg, str(hf_dir), task="llm/v1/chat",
                          generation_params={"max_tokens": max_tokens, "temperature": 0.0})

    from hangar.tracking import fluent as tracking

    tracking.set_tracking_uri(settings.store_uri)
    tracking.set_experiment("demo")
    run = tracking.start_run(run_name="assistant-demo")
    tracking.log_params({"llm": "SmolLM2-135M-Instruct", "max_tokens": max_tokens, "system_prompt": SYSTEM_PROMPT})
    tracking.log_input({"question": list(questions)}, context="demo", name="demo-questions")
    with _step(console, timings, "package prompt + LLM as a chat chain, logged as a model of the run"):
        info = hc.log_model("assistant", [hc.Prompt(SYSTEM_PROMPT, defaults={"product": "Hangar"}),
                                          hc.Model(llm_pkg)], task="llm/v1/chat")
    from hangar.catalog.fluent import registry

    with _step(console, timings, "register it as main.default.assistant and point @champion at it"):
        version = registry().register_model(info.model_uri, "main.default.assistant")
        registry().set_alias("main.default.assistant", "champion", version.version)
    with _step(console, timings, f"load models:/main.default.assistant@champion (version {version.version}, "
                                 "checksums verified)"):
        model = hp.load_model("models:/main.default.assistant@champion")

    results = []
    for question in questions:
        started = time.perf_counter()
        response = model.predict({"messages": [{"role": "user", "content": question}]},
                                 params={"max_tokens": max_tokens})
        elapsed = time.perf_counter() - started
        text = response["choices"][0]["message"]["content"].strip()
        tokens = response.get("usage", {}).get("completion_tokens", 0)
        results.append({"question": question, "answer": text, "seconds": elapsed, "tokens": tokens})
        timings.append((f"answer: {question[:40]}", elapsed))

    total_s = sum(r["seconds"] for r in results)
    tracking.log_metrics({"answer_seconds_mean": total_s / len(results),
                    "tokens_per_second": sum(r["tokens"] for r in results) / total_s if total_s else 0.0})
    tracking.end_run()
    console.print(f"[green]✓[/green] run {run.info.run_id} in experiment 'demo' "
                  f"(see: hangar runs get {run.info.run_id}); logged model {info.model_uri}; "
                  f"registered as models:/main.default.assistant/{version.version} @champion")

    from hangar.demo_serve import serve_and_ask

    serve_and_ask(settings, max_tokens, console, timings)

    from hangar.demo_batch import batch_score

    batch_score(base, max_tokens, console, timings)

    from hangar.demo_server import govern_and_load

    govern_and_load(settings, max_tokens, console, timings, since_ms=started_ms)

    table = Table(title=f"assistant (llm/v1/chat, at most {max_tokens} new tokens)", show_lines=True)
    table.add_column("question", style="bold", max_width=30)
    table.add_column("answer", max_width=70)
    table.add_column("s", justify="right")
    table.add_column("tok/s", justify="right")
    for r in results:
        rate = r["tokens"] / r["seconds"] if r["seconds"] else 0
        table.add_row(r["question"], r["answer"], f"{r['seconds']:.2f}", f"{rate:.1f}")
    console.print(table)

    steps = Table(title="timings")
    steps.add_column("step")
    steps.add_column("seconds", justify="right")
    for label, seconds in timings:
        steps.add_row(label, f"{seconds:.2f}")
    console.print(steps)
    return results
