"""The demo's serving step: ``hangar serve`` the champion, ask it through the OpenAI client and
through ``/invocations``, stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from hangar.config import Settings

MODEL_URI = "models:/main.default.assistant@champion"
QUESTION = "Say hello to the Hangar team in one sentence."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, timeout: float) -> None:
    """Until the server at ``url`` answers /ready; HangarError if it exits first or takes longer than ``timeout``."""
    import httpx

    from hangar.errors import HangarError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HangarError(f"hangar serve exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise HangarError(f"hangar serve was not ready within {timeout:.0f} s")


def stop(proc: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM (a graceful drain), then SIGKILL if the process has not exited in ``grace_s``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve_and_ask(settings: Settings, max_tokens: int, console, timings: list) -> dict:
    """Start the server, send one chat request and one /invocations request, stop the server."""
    import httpx
    import openai

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HANGAR_HOME": str(settings.home), "HANGAR_TRACKING_URI": settings.store_uri}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "serve", MODEL_URI, "--port", str(port),
                             "--log-level", "warning"], env=env)
    try:
        wait_ready(proc, url, timeout=180)
        timings.append((f"hangar serve {MODEL_URI}: spawn to /ready", time.perf_counter() - started))
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
        t = time.perf_counter()
        chat = client.chat.completions.create(model="assistant", max_tokens=max_tokens,
                                              messages=[{"role": "user", "content": QUESTION}])
        timings.append(("POST /v1/chat/completions (openai client)", time.perf_counter() - t))
        t = time.perf_counter()
        inv = httpx.post(f"{url}/invocations", timeout=120, json={
            "inputs": {"messages": [{"role": "user", "content": QUESTION}]}, "params": {"max_tokens": max_tokens}})
        inv.raise_for_status()
        timings.append(("POST /invocations (MLflow scoring protocol)", time.perf_counter() - t))
    finally:
        stop(proc)
    answers = {"openai": chat.choices[0].message.content.strip(),
               "invocations": inv.json()["predictions"]["choices"][0]["message"]["content"].strip()}
    console.print(f"[green]✓[/green] served {MODEL_URI} on {url}: the openai client got "
                  f"[italic]{answers['openai']!r}[/italic]; /invocations got [italic]{answers['invocations']!r}[/italic]")
    return answers
