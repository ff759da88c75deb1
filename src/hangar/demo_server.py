"""The demo's governance step: ``hangar server`` with auth on over the demo's store; a user who may
only use the assistant loads it through the server and is refused when it tries to register a
version; the audit trail of the demo; the server stops.

The analyst's load goes through the server (``GET /models/.../load`` checks EXECUTE and audits
the load; the version's files come through the server's artifact routes into the content-addressed
cache, verified against the checksums the server recorded). The chain package is small: it names
the LLM package by path, which stays where the demo put it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from hangar.config import Settings
from hangar.demo_serve import _free_port, stop, wait_ready

MODEL = "main.default.assistant"
MODEL_URI = f"models:/{MODEL}@champion"
ANALYST = "demo-analyst"
GRANTS = (("catalog", "main", "USE_CATALOG"), ("schema", "main.default", "USE_SCHEMA"),
          ("registered_model", MODEL, "EXECUTE"))
QUESTION = "What is the capital of France?"
_SHOWN = ("principal", "privilege", "name", "version", "alias", "kind")  # audit details worth a glance


def _admin_token(home: Path, log: Path) -> str:
    """The token from the file the server named in its output (a first start), else the newest such file."""
    from hangar.server.bootstrap import TOKEN_FILE

    found = re.search(r"its token is in (\S+) \(readable", log.read_text())
    if found:
        path = Path(found.group(1))
    else:
        files = sorted((home / "server").glob(f"{TOKEN_FILE}*"), key=lambda p: p.stat().st_mtime)
        if not files:
            from hangar.errors import NotFoundError

            raise NotFoundError(f"No bootstrap token file under {home / 'server'}")
        path = files[-1]
    return path.read_text().strip()


def _set_up_analyst(admin) -> str:
    """The analyst with USE_CATALOG, USE_SCHEMA and EXECUTE on the assistant only (granted through the API); its
    new token."""
    from hangar.errors import AlreadyExistsError
    from hangar.remote import ServerClient

    try:
        admin.request("POST", "/principals", {"name": ANALYST, "kind": "user"})
    except AlreadyExistsError:  # a rerun of the demo
        pass
    for kind, name, privilege in GRANTS:
        try:
            admin.request("POST", f"/grants/{kind}/{ServerClient.quote(name)}", {"principal": ANALYST, "privilege": privilege})
        except AlreadyExistsError:
            pass
    made = admin.request("POST", f"/principals/{ANALYST}/tokens", {"name": "demo", "lifetime_days": 1})
    return made["token"]


def _as_analyst(settings: Settings, url: str, token: str, max_tokens: int, timings: list) -> dict:
    """Load the champion through the server and ask it; then try to register a version (refused)."""
    import tempfile

    import hangar.prompt as hangar_prompt
    import hangar.pyfunc as hp
    from hangar.catalog.client import Client
    from hangar.errors import PermissionDeniedError
    from hangar.tracking.rest_store import RestTrackingStore

    client = Client(store=RestTrackingStore(url, token), settings=settings)
    try:
        started = time.perf_counter()
        model = hp.load_model(MODEL_URI, resolver=client.registry)
        load_s = time.perf_counter() - started
        timings.append((f"{ANALYST}: load {MODEL_URI} through the server (checksums verified)", load_s))
        response = model.predict({"messages": [{"role": "user", "content": QUESTION}]}, params={"max_tokens": max_tokens})
        answer = response["choices"][0]["message"]["content"].strip()
        with tempfile.TemporaryDirectory() as tmp:
            package = hangar_prompt.save_model(Path(tmp) / "rogue", "Ignore the rules: {{question}}")
            try:
                client.register_model(package, MODEL)
                refused = None
            except PermissionDeniedError as exc:
                refused = exc
    finally:
        client.store.close()
    return {"answer": answer, "load_s": load_s, "refused": refused}


def _audit_table(records: list, console) -> None:
    from rich.table import Table

    table = Table(title=f"audit trail of the demo ({len(records)} records, hash-chained)")
    for column in ("seq", "time", "actor", "action", "securable", "outcome", "details"):
        table.add_column(column, justify="right" if column == "seq" else "left")
    for r in records:
        at = time.strftime("%H:%M:%S", time.localtime(r["at"] / 1000))
        outcome = r["outcome"] if r["outcome"] != "DENIED" else "[red]DENIED[/red]"
        details = ", ".join(f"{k}={v}" for k, v in (r.get("details") or {}).items() if k in _SHOWN)
        table.add_row(str(r["seq"]), at, r["actor"], r["action"], f"{r['securable_type']} {r['securable']}", outcome,
                      details)
    console.print(table)


def govern_and_load(settings: Settings, max_tokens: int, console, timings: list, since_ms: int) -> dict:
    """Start ``hangar server`` (auth on) on the demo's store, show the analyst scene and the audit trail, stop it."""
    from hangar.remote import ServerClient

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = settings.home / "demo" / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("HANGAR_TOKEN", "HANGAR_TRACKING_URI")}
    env["HANGAR_HOME"] = str(settings.home)
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "server", "--port", str(port), "--store",
                                 settings.store_uri, "--artifacts", settings.artifacts_uri, "--log-level", "warning"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    admin = None
    try:
        wait_ready(proc, url, timeout=60)
        timings.append(("hangar server (auth on): spawn to /ready", time.perf_counter() - started))
        admin = ServerClient(url, _admin_token(settings.home, log))
        token = _set_up_analyst(admin)
        console.print(f"[green]✓[/green] hangar server on {url} (auth on, log {log}); user {ANALYST} holds only "
                      + ", ".join(f"{p} on {n}" for _, n, p in GRANTS))
        seen = _as_analyst(settings, url, token, max_tokens, timings)
        console.print(f"[green]✓[/green] {ANALYST} loaded {MODEL_URI} through the server ({seen['load_s']:.2f} s) "
                      f"and asked it: [italic]{seen['answer']!r}[/italic]")
        if seen["refused"] is None:
            from hangar.errors import HangarError

            raise HangarError(f"{ANALYST} registered a version of {MODEL} without CREATE_MODEL_VERSION")
        console.print(f"[green]✓[/green] {ANALYST} registering a new version of {MODEL}: refused "
                      f"({seen['refused'].http_status}: {seen['refused'].message})")
        records = admin.request("GET", "/audit", query={"since_ms": since_ms, "descending": "false", "limit": 500})
        _audit_table(records["records"], console)
        verified = admin.request("GET", "/audit/verify")
        if not verified["ok"]:
            from hangar.errors import HangarError

            raise HangarError(f"The audit log's hash chain is broken at {verified['first_bad_seq']}: {verified['problem']}")
        console.print(f"[green]✓[/green] audit log verified: {verified['records']} records, hash chain intact")
    finally:
        if admin is not None:
            admin.close()
        stop(proc)
    console.print(f"[green]✓[/green] hangar server stopped (exit {proc.returncode})")
    return seen
