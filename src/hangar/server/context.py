"""What a handler gets: the caller, its access view, the parsed request and the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hangar.governance.access import Access
from hangar.governance.authn import Identity


@dataclass
class Services:
    """Shared by every request of one worker process."""

    config: Any
    tracking: Any  # SqlTrackingStore
    registry: Any  # SqlRegistry (actor replaced per request)
    authenticator: Any
    limiter: Any = None  # FailedAuthLimiter

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
