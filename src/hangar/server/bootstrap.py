"""The first administrator: created on the first start of a server with authentication on.

On a store with no principals, ``bootstrap`` creates the user ``admin`` with ALL_PRIVILEGES on
the metastore and a token for it, and writes the token, once, to a file only its owner can read
(``HANGAR_HOME/server/bootstrap-admin-token``, mode 0600, created exclusively). The caller prints
the file's *path*; the token itself is never printed or logged. A second server starting on the
same store at the same moment loses the race (the principal name is unique) and does nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from hangar.errors import AlreadyExistsError, ConflictError

ADMIN = "admin"
TOKEN_FILE = "bootstrap-admin-token"


def needs_bootstrap(engine) -> bool:
    from sqlalchemy import select

    from hangar.store import schema as t

    with engine.connect() as conn:
        return conn.execute(select(t.principals.c.id).limit(1)).first() is None


def _write_once(folder: Path, secret: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for n in range(1000):
        path = folder / (TOKEN_FILE if n == 0 else f"{TOKEN_FILE}.{n}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue  # an older store's file: never overwritten
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(secret + "\n")
        return path
    raise ConflictError(f"Too many bootstrap token files in {folder}; remove old ones")


def bootstrap(engine, home: Path) -> Path | None:
    """Create the admin and its token file if the store has no principal yet; the file's path, or None."""
    from hangar.governance import grants, principals, tokens
    from hangar.governance import privileges as pv

    if not needs_bootstrap(engine):
        return None
    try:
        principals.create(engine, ADMIN, principals.USER, actor="bootstrap")
    except (AlreadyExistsError, ConflictError):
        return None
    grants.grant(engine, pv.METASTORE, pv.METASTORE_NAME, ADMIN, pv.ALL_PRIVILEGES, actor="bootstrap")
    made = tokens.create(engine, ADMIN, "bootstrap", lifetime_days=None, actor="bootstrap")
    return _write_once(Path(home) / "server", made.token)
