"""Lineage around an entity, shown only as far as the caller may see it; recording an edge."""

from __future__ import annotations

from sqlalchemy import select

from hangar.governance import privileges as pv
from hangar.server.wire import int_param, str_field
from hangar.store import schema as t
from hangar.store.transactions import write_transaction

_EXPERIMENT_OF = {"run": (t.runs.c.run_id, t.runs.c.experiment_id),
                  "logged_model": (t.logged_models.c.model_id, t.logged_models.c.experiment_id),
                  "dataset": (t.datasets.c.dataset_id, t.datasets.c.experiment_id)}


def _visible(ctx, conn, node) -> bool:
    if node.type in ("model_version", "registered_model"):
        name = node.id.rpartition("/")[0] if node.type == "model_version" else node.id
        try:
            name = pv.normalise(pv.REGISTERED_MODEL, name)
        except Exception:
            return False
        return ctx.access.can_see(pv.REGISTERED_MODEL, name)
    if node.type in _EXPERIMENT_OF:
        key, eid_col = _EXPERIMENT_OF[node.type]
        eid = conn.execute(select(eid_col).where(key == node.id)).scalar()
        return eid is not None and ctx.access.check(pv.EXPERIMENT, str(eid), pv.READ)
    return ctx.access.is_admin()


def get_lineage(ctx):
    from hangar.catalog import lineage

    q = ctx.query
    entity = str_field(q, "entity", max_len=1000)
    with ctx.engine.connect() as conn:
        node_type, node_id = ((entity, q["entity_id"]) if q.get("entity_id") is not None
                              else lineage.resolve_entity(conn, entity))
        graph = lineage.get_lineage(conn, node_type, node_id, q.get("direction") or "upstream",
                                    int_param(q.get("max_depth"), "max_depth", 10, 0, 100))
        if ctx.access.is_admin():
            return graph
        keep = [n for n in graph.nodes if _visible(ctx, conn, n)]
    keys = {n.key for n in keep}
    if graph.root.key not in keys:
        from hangar.errors import PermissionDeniedError

        raise PermissionDeniedError("Permission denied: you may not see the entity whose lineage you asked for")
    return lineage.LineageGraph(graph.root, graph.direction, keep,
                                [e for e in graph.edges if e.src in keys and e.dst in keys])


def add_edge(ctx):
    """Record one stored edge (idempotent): ``{"created": true}`` when it was new. The guard has checked
    the body's node types; ``lineage.add_edge`` refuses derived edge kinds and malformed ids (400)."""
    from hangar.catalog import lineage

    b = ctx.body
    with write_transaction(ctx.engine) as conn:
        created = lineage.add_edge(conn, b["src_type"], b["src_id"], b["dst_type"], b["dst_id"])
    return {"created": created}
