"""Alias following: notice that ``@champion`` moved, and tell the endpoint to switch.

A background thread asks the registry, every ``poll_s`` seconds, which version each followed
alias points at. On PostgreSQL it also LISTENs on the channel the registry notifies when an
alias moves (``catalog.versions.ALIAS_CHANNEL``), so a move is seen at once rather than at the
next poll; polling stays as the safety net (a dropped listen connection, SQLite).

``on_move(key, version)`` runs in the watcher thread, so the new version loads off the serving
path; the endpoint swaps it in only once it has loaded. A load that fails keeps the old version
serving and is retried at later polls.

The same thread also runs ``on_poll`` first in each pass: a served endpoint checks there whether
its stored config changed (``endpoint_runtime``), so a config update and an alias move are never
applied at the same time. The listener also wakes the pass on ``ENDPOINT_CHANNEL`` (an endpoint
was created, updated or deleted). ``set_targets`` replaces the followed aliases after an update.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("hangar.serving")


@dataclass
class FollowedAlias:
    key: str          # the served entity's name
    model: str        # catalog.schema.model
    alias: str
    version: int      # the version now served


class AliasWatcher:
    def __init__(self, targets: list[FollowedAlias], resolve: Callable[[str, str], int],
                 on_move: Callable[[str, int], None], *, poll_s: float = 5.0, listen_url: str | None = None,
                 on_poll: Callable[[], None] | None = None):
        self.targets = targets
        self._on_poll = on_poll
        self._resolve = resolve
        self._on_move = on_move
        self.poll_s = poll_s
        self.listen_url = listen_url
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failed: dict[str, int] = {}  # key -> version whose load failed (retried each poll, logged once)

    def start(self) -> None:
        if not self.targets and self._on_poll is None:
            return
        self._threads.append(threading.Thread(target=self._poll_loop, name="hangar-alias-watch", daemon=True))
        if self.listen_url:
            self._threads.append(threading.Thread(target=self._listen_loop, name="hangar-alias-listen", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def set_targets(self, targets: list[FollowedAlias]) -> None:
        """Follow these aliases from now on (called from ``on_poll``, in the watcher thread)."""
        keys = {t.key for t in targets}
        self._failed = {k: v for k, v in self._failed.items() if k in keys}
        self.targets = targets

    def check_now(self) -> None:
        """One pass: ``on_poll``, then the followed aliases (the poll loop calls this; tests may too)."""
        if self._on_poll is not None:
            try:
                self._on_poll()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one check
                log.exception("Checking the endpoint's config failed")
        for target in list(self.targets):
            try:
                version = self._resolve(target.model, target.alias)
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not stop the watcher
                log.warning("Cannot read %s@%s: %s", target.model, target.alias, exc)
                continue
            if version == target.version:
                self._failed.pop(target.key, None)
                continue
            try:
                self._on_move(target.key, version)
            except Exception as exc:  # noqa: BLE001 - keep serving the old version
                if self._failed.get(target.key) != version:
                    log.error("Alias %s@%s moved to version %s but it failed to load; still serving version %s: %s",
                              target.model, target.alias, version, target.version, exc)
                self._failed[target.key] = version
                continue
            log.info("%s@%s: now serving version %s (was %s)", target.model, target.alias, version, target.version)
            target.version = version
            self._failed.pop(target.key, None)

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.check_now()

    def _listen_loop(self) -> None:
        """Wake the poll loop on each PostgreSQL notification; reconnect after errors."""
        import psycopg

        from hangar.catalog.versions import ALIAS_CHANNEL
        from hangar.serving.endpoint_store import ENDPOINT_CHANNEL

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.listen_url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {ALIAS_CHANNEL}")
                    if self._on_poll is not None:
                        conn.execute(f"LISTEN {ENDPOINT_CHANNEL}")
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._wake.set()
            except Exception as exc:  # noqa: BLE001 - polling goes on meanwhile
                log.warning("Listening for alias moves and endpoint updates failed (%s); polling every %g s",
                            type(exc).__name__, self.poll_s)
                self._stop.wait(min(self.poll_s, 5.0))


def listen_url_for(store_uri: str) -> str | None:
    """A libpq URL for LISTEN when the store is PostgreSQL, else None."""
    from sqlalchemy.engine import make_url

    url = make_url(store_uri)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
