"""What a config update changes on a running endpoint: the plan, decided before anything loads.

``plan_update(routing, new_config)`` compares the routing in force with an updated config and
says, per served entity (matched by name):

- **keep**: same model and same serving settings; the loaded app goes on serving (a new weight
  only changes the traffic split; an alias-following entity keeps the version it follows);
- **rebuild**: same model, other serving settings (batching, ``max_batch_size``, ``max_wait_ms``,
  ``threads``, or the limits each entity app enforces: ``max_payload_bytes``,
  ``request_timeout_s``, ``max_queue``): a new app with its own model queue over the model
  already loaded, no reload from storage;
- **load**: a new entity, another model URI, or changed secrets (a model may read its
  secrets when it loads, e.g. the ``openai`` flavor's API key): loaded from storage;
- **remove**: no longer in the config; drained, then its model queue is closed.

and whether the rate limiter (``limits.rate_per_minute``, ``rate_limit_redis``) and the
inference table must be replaced. Everything in the config applies live except one thing:
a secret dropped from the config stays exported in the serving process until it restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def entity_settings(entity, limits):
    """The ``ServingSettings`` of one served entity's app."""
    from hangar.serving.settings import ServingSettings

    return ServingSettings(batching=entity.batching, max_batch_size=entity.max_batch_size, max_wait_ms=entity.max_wait_ms,
                           max_queue=limits.max_queue, request_timeout=limits.request_timeout_s,
                           max_body_bytes=limits.max_payload_bytes, model_threads=entity.threads,
                           inline_max_ms=entity.inline_max_ms)


@dataclass
class UpdatePlan:
    keep: list[tuple[Any, Any]] = field(default_factory=list)     # (old slot, new entity)
    rebuild: list[tuple[Any, Any]] = field(default_factory=list)  # (old slot, new entity)
    load: list[Any] = field(default_factory=list)                 # new entities
    remove: list[Any] = field(default_factory=list)               # old slots
    new_limiter: bool = False
    new_table: bool = False
    secrets_changed: bool = False
    secrets_dropped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"{label} {', '.join(names)}" for label, names in (
            ("loading", [e.name for e in self.load]),
            ("rebuilding (new settings)", [e.name for _, e in self.rebuild]),
            ("removing", [s.entity.name for s in self.remove]),
            ("re-weighting", [e.name for s, e in self.keep if s.entity.weight != e.weight])) if names]
        if self.new_limiter:
            parts.append("new rate limit")
        if self.new_table:
            parts.append("new inference table")
        if self.secrets_changed:
            parts.append("secrets re-read")
        return "; ".join(parts) or "no change to what is served"


def plan_update(routing, new) -> UpdatePlan:
    old = routing.config
    plan = UpdatePlan()
    plan.secrets_changed = new.secrets != old.secrets
    plan.secrets_dropped = sorted(set(old.secrets) - set(new.secrets))
    names = {e.name for e in new.served_entities}
    for entity in new.served_entities:
        slot = routing.by_name(entity.name)
        if slot is None or slot.entity.model != entity.model or plan.secrets_changed:
            plan.load.append(entity)
        elif entity_settings(slot.entity, old.limits) != entity_settings(entity, new.limits):
            plan.rebuild.append((slot, entity))
        else:
            plan.keep.append((slot, entity))
    plan.remove = [slot for slot in routing.slots if slot.entity.name not in names]
    plan.new_limiter = (old.limits.rate_per_minute, old.rate_limit_redis) != (new.limits.rate_per_minute,
                                                                              new.rate_limit_redis)
    plan.new_table = old.inference_table != new.inference_table
    return plan
