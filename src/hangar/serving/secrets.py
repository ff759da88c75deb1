"""Secrets for models that call other APIs, resolved when an endpoint starts.

An endpoint config names where each secret lives (an environment variable of the serving
process, or a file such as a mounted Kubernetes/Docker secret); the value is read here, put in
this process's environment under the name the model expects (the ``openai`` flavor reads its key
from the variable its manifest names), and never stored, logged or echoed in an error.
"""

from __future__ import annotations

import os
from pathlib import Path

from hangar.errors import MissingCredentialError


def resolve_secrets(refs: dict[str, dict], environ: dict | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    values = {}
    for name, ref in refs.items():
        if "env" in ref:
            value = environ.get(ref["env"])
            if not value:
                raise MissingCredentialError(f"Secret {name}: the environment variable {ref['env']} is not set in the "
                                             "serving process; set it, or point the endpoint config at a file")
        else:
            path = Path(ref["file"])
            try:
                value = path.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise MissingCredentialError(f"Secret {name}: cannot read the file {path} ({exc.strerror})") from None
            if not value:
                raise MissingCredentialError(f"Secret {name}: the file {path} is empty")
        values[name] = value
    return values


def install_secrets(refs: dict[str, dict]) -> list[str]:
    """Resolve ``refs`` and export them to this process's environment; the names, not the values."""
    values = resolve_secrets(refs)
    os.environ.update(values)
    return sorted(values)
