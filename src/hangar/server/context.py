"""What a handler gets: the caller, its access view, the parsed request and the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hangar.governance.access import Access
from hangar.governance.authn import Identity


class RunExperiments:
    """A per-process memo: run id -> its experiment's id, for the permission check of every run route.

    Exact while the run exists: a run never moves to another experiment (no route or store method
    changes ``runs.experiment_id``; ``hangar gc`` removes files, not run rows) and run ids are random,
    never reused. Only found runs are kept. Should a run's row be removed by other means, its entry
    lets the request reach the store only if the caller holds the privilege on that experiment; the
    store answers 404 and ``guard.run_route`` drops the entry. Bounded: cleared when full."""

    MAX_ENTRIES = 100_000

    def __init__(self):
        self._ids: dict[str, str] = {}

    def get(self, run_id: str) -> str | None:
        return self._ids.get(run_id)

    def remember(self, run_id: str, experiment_id: str) -> None:
        if len(self._ids) >= self.MAX_ENTRIES:
            self._ids.clear()
        self._ids[run_id] = experiment_id

    def forget(self, run_id: str) -> None:
        self._ids.pop(run_id, None)


@dataclass
class Services:
    """Shared by every request of one worker process."""

    config: Any
    tracking: Any  # SqlTrackingStore
    registry: Any  # SqlRegistry (actor replaced per request)
    authenticator: Any
    limiter: Any = None  # FailedAuthLimiter
    run_experiments: RunExperiments = field(default_factory=lambda: RunExperiments())

    @property
    def engine(self):
        return self.tracking.engine


@dataclass
class RequestContext:
    services: Services
    path_params: dict
    query: dict
    body: dict
    request_id: str
    headers: Any = None
    client_host: str = "-"
    identity: Identity | None = None
    access: Access | None = None
    _registry: Any = field(default=None, repr=False)

    @property
    def engine(self):
        return self.services.engine

    @property
    def actor(self) -> str:
        return self.identity.name if self.identity else "anonymous"

    @property
    def registry(self):
        if self._registry is None:
            self._registry = self.services.registry.with_actor(self.actor, self.request_id)
        return self._registry

    @property
    def tracking(self):
        return self.services.tracking
