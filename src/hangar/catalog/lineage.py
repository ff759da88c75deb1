"""Lineage: which data, runs and packages a model version came from, and where it went.

The graph's edges always point the way data flows::

    dataset ──► run ──► logged_model ──► model_version ──► endpoint
                  └──────────────────────►     │      └──► batch_job ──► table
                  (version registered          │
                   straight from a run)        ...

Edges the tracking and registry tables already record are derived in the queries, never
stored twice:

- dataset → run from ``inputs`` (a dataset's id is ``datasets.dataset_id``),
- run → logged_model from ``logged_models.source_run_id``,
- logged_model → model_version from ``model_versions.logged_model_id``,
- run → model_version from ``model_versions.run_id`` when the version has no logged model.

Every other edge (version → endpoint, version → batch job, batch job → table, table → batch
job, ...) is stored in ``lineage_edges`` by ``add_edge``. A model version's id is
``catalog.schema.model/N``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from hangar.errors import InvalidArgumentError, NotFoundError
from hangar.store import schema as t
from hangar.store.upsert import insert_for

__all__ = [
    "DIRECTIONS",
    "NODE_TYPES",
    "Edge",
    "LineageGraph",
    "Node",
    "add_edge",
    "get_lineage",
    "resolve_entity",
]

NODE_TYPES = ("dataset", "run", "logged_model", "model_version", "endpoint", "batch_job", "table")
DIRECTIONS = ("upstream", "downstream")
_STORED_ONLY = ("endpoint", "batch_job", "table")  # nodes known only from lineage_edges
_DERIVED = {
    ("dataset", "run"): "log the dataset as the run's input (log_inputs)",
    ("run", "logged_model"): "create the logged model with source_run_id",
    ("logged_model", "model_version"): "register the version from the logged model",
    ("run", "model_version"): "register the version from the run",
}
_MAX_ID = 512
_CHUNK = 500


@dataclass(frozen=True)
class Node:
    type: str
    id: str
    label: str

    @property
    def key(self) -> str:
        return f"{self.type}:{self.id}"


@dataclass(frozen=True)
class Edge:
    """An edge in the direction data flows; ``src`` and ``dst`` are node keys (``type:id``)."""

    src: str
    dst: str


@dataclass(frozen=True)
class LineageGraph:
    root: Node
    direction: str
    nodes: list[Node]
    edges: list[Edge]

    def node(self, key: str) -> Node:
        for n in self.nodes:
            if n.key == key:
                return n
        raise KeyError(key)

    def children(self, key: str) -> list[Node]:
        """The nodes one step further in the graph's direction (upstream: the node's sources)."""
        by_key = {n.key: n for n in self.nodes}
        if self.direction == "downstream":
            return [by_key[e.dst] for e in self.edges if e.src == key]
        return [by_key[e.src] for e in self.edges if e.dst == key]

    def to_dict(self) -> dict:
        return {"root": self.root.key, "direction": self.direction,
                "nodes": [{"key": n.key, "type": n.type, "id": n.id, "label": n.label} for n in self.nodes],
                "edges": [{"src": e.src, "dst": e.dst} for e in self.edges]}


def _node_type(value) -> str:
    if value not in NODE_TYPES:
        raise InvalidArgumentError(f"Unknown lineage node type {value!r}: use one of {', '.join(NODE_TYPES)}")
    return value


def _node_id(node_type: str, value) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        raise InvalidArgumentError(f"A {node_type} id must be a non-empty string of at most {_MAX_ID} characters, "
                                   f"got {value!r}")
    if node_type == "model_version":
        _version_key(value)
    return value


def _version_key(version_id: str) -> tuple[str, int]:
    name, sep, number = version_id.rpartition("/")
    if not sep or not name or not number.isdecimal() or int(number) < 1:
        raise InvalidArgumentError(f"A model version's id is 'catalog.schema.model/N', got {version_id!r}")
    return name, int(number)


def add_edge(conn, src_type: str, src_id: str, dst_type: str, dst_id: str) -> bool:
    """Record that data flowed from one node to another (idempotent); True when it was new.

    Only for edges the tracking and registry tables do not already imply (see the module)."""
    src_type, dst_type = _node_type(src_type), _node_type(dst_type)
    src_id, dst_id = _node_id(src_type, src_id), _node_id(dst_type, dst_id)
    if (src_type, src_id) == (dst_type, dst_id):
        raise InvalidArgumentError(f"A lineage edge cannot point from {src_type} {src_id!r} to itself")
    if (src_type, dst_type) in _DERIVED:
        raise InvalidArgumentError(f"{src_type} → {dst_type} lineage is derived from the tracking and registry "
                                   f"tables, not stored: {_DERIVED[(src_type, dst_type)]}")
    stmt = insert_for(conn, t.lineage_edges).on_conflict_do_nothing(
        index_elements=["src_type", "src_id", "dst_type", "dst_id"]).returning(t.lineage_edges.c.id)
    row = conn.execute(stmt, {"src_type": src_type, "src_id": src_id, "dst_type": dst_type, "dst_id": dst_id,
                              "created_at": int(time.time() * 1000)}).first()
    return row is not None


# -- finding a node -------------------------------------------------------------------
def resolve_entity(conn, entity: str) -> tuple[str, str]:
    """(type, id) for ``models:/name/N``, ``models:/name@alias``, ``models:/<logged-model-id>``,
    ``runs:/<run-id>[/path]`` or ``type:id``."""
    from hangar.uri import parse_model_uri

    if not isinstance(entity, str) or not entity:
        raise InvalidArgumentError(f"A lineage entity is a URI or 'type:id', got {entity!r}")
    if entity.startswith("runs:/"):
        run_id = entity[len("runs:/"):].strip("/").partition("/")[0]
        if not run_id:
            raise InvalidArgumentError(f"{entity!r}: a runs URI is runs:/<run-id>")
        return "run", run_id
    if entity.startswith("models:/"):
        uri = parse_model_uri(entity)
        if uri.logged_model_id:
            return "logged_model", uri.logged_model_id
        if uri.alias:
            version = conn.execute(select(t.aliases.c.version).where(
                t.aliases.c.full_name == uri.name, t.aliases.c.alias == uri.alias)).scalar()
            if version is None:
                raise NotFoundError(f"Model {uri.name} has no alias @{uri.alias}")
            return "model_version", f"{uri.name}/{version}"
        return "model_version", f"{uri.name}/{uri.version}"
    node_type, sep, node_id = entity.partition(":")
    if not sep or node_type not in NODE_TYPES:
        raise InvalidArgumentError(f"{entity!r}: name a lineage node as models:/..., runs:/... or TYPE:ID "
                                   f"with TYPE one of {', '.join(NODE_TYPES)}")
    return node_type, _node_id(node_type, node_id)


def _root_id(conn, node_type: str, node_id: str) -> str:
    """The stored id of the node named, or NotFoundError."""
    if node_type == "dataset":
        if conn.execute(select(t.datasets.c.dataset_id).where(t.datasets.c.dataset_id == node_id)).first():
            return node_id
        name, sep, digest = node_id.rpartition("@")
        if sep:
            ids = conn.execute(select(t.datasets.c.dataset_id).where(
                t.datasets.c.name == name, t.datasets.c.digest == digest)).scalars().all()
            if len(ids) > 1:
                raise InvalidArgumentError(f"Dataset {node_id} was logged in {len(ids)} experiments; "
                                           f"name one by its id: {', '.join(sorted(ids))}")
            if ids:
                return ids[0]
        raise NotFoundError(f"No dataset with id or name@digest {node_id!r}")
    if node_type == "run":
        found = conn.execute(select(t.runs.c.run_id).where(t.runs.c.run_id == node_id)).first()
    elif node_type == "logged_model":
        found = conn.execute(select(t.logged_models.c.model_id).where(t.logged_models.c.model_id == node_id)).first()
    elif node_type == "model_version":
        if node_id.startswith("models:/"):
            node_id = resolve_entity(conn, node_id)[1]
        from hangar.uri import full_model_name

        name, number = _version_key(node_id)
        name = full_model_name(name)  # a bare name lives in main.default
        node_id = f"{name}/{number}"
        found = conn.execute(select(t.model_versions.c.version).where(
            t.model_versions.c.full_name == name, t.model_versions.c.version == number)).first()
    else:
        e = t.lineage_edges.c
        found = (conn.execute(select(e.id).where(e.src_type == node_type, e.src_id == node_id).limit(1)).first()
                 or conn.execute(select(e.id).where(e.dst_type == node_type, e.dst_id == node_id).limit(1)).first())
    if not found:
        raise NotFoundError(f"No {node_type.replace('_', ' ')} {node_id!r}"
                            + (" in the lineage graph" if node_type in _STORED_ONLY else ""))
    return node_id


# -- one step of the walk -------------------------------------------------------------
def _chunks(ids: list):
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def _versions_of(conn, version_ids: list[str]):
    """model_versions rows for ids 'name/N' (queried by name, filtered by number)."""
    wanted = {_version_key(v) for v in version_ids}
    names = sorted({name for name, _ in wanted})
    mv = t.model_versions.c
    for chunk in _chunks(names):
        for r in conn.execute(select(mv.full_name, mv.version, mv.logged_model_id, mv.run_id).where(
                mv.full_name.in_(chunk))):
            if (r.full_name, r.version) in wanted:
                yield r


def _derived_downstream(conn, node_type: str, ids: list[str]):
    mv = t.model_versions.c
    for chunk in _chunks(ids):
        if node_type == "dataset":
            for r in conn.execute(select(t.inputs.c.dataset_id, t.inputs.c.run_id).where(t.inputs.c.dataset_id.in_(chunk))):
                yield ("dataset", r.dataset_id), ("run", r.run_id)
        elif node_type == "run":
            lm = t.logged_models.c
            for r in conn.execute(select(lm.source_run_id, lm.model_id).where(lm.source_run_id.in_(chunk))):
                yield ("run", r.source_run_id), ("logged_model", r.model_id)
            for r in conn.execute(select(mv.run_id, mv.full_name, mv.version).where(
                    mv.run_id.in_(chunk), mv.logged_model_id.is_(None))):
                yield ("run", r.run_id), ("model_version", f"{r.full_name}/{r.version}")
        elif node_type == "logged_model":
            for r in conn.execute(select(mv.logged_model_id, mv.full_name, mv.version).where(mv.logged_model_id.in_(chunk))):
                yield ("logged_model", r.logged_model_id), ("model_version", f"{r.full_name}/{r.version}")


def _derived_upstream(conn, node_type: str, ids: list[str]):
    if node_type == "model_version":
        for r in _versions_of(conn, ids):
            dst = ("model_version", f"{r.full_name}/{r.version}")
            if r.logged_model_id is not None:
                yield ("logged_model", r.logged_model_id), dst
            elif r.run_id is not None:
                yield ("run", r.run_id), dst
        return
    for chunk in _chunks(ids):
        if node_type == "run":
            for r in conn.execute(select(t.inputs.c.dataset_id, t.inputs.c.run_id).where(t.inputs.c.run_id.in_(chunk))):
                yield ("dataset", r.dataset_id), ("run", r.run_id)
        elif node_type == "logged_model":
            lm = t.logged_models.c
            for r in conn.execute(select(lm.source_run_id, lm.model_id).where(
                    lm.model_id.in_(chunk), lm.source_run_id.is_not(None))):
                yield ("run", r.source_run_id), ("logged_model", r.model_id)


def _stored(conn, node_type: str, ids: list[str], direction: str):
    e = t.lineage_edges.c
    own_type, own_id = (e.src_type, e.src_id) if direction == "downstream" else (e.dst_type, e.dst_id)
    for chunk in _chunks(ids):
        for r in conn.execute(select(e.src_type, e.src_id, e.dst_type, e.dst_id)
                              .where(own_type == node_type, own_id.in_(chunk)).order_by(e.id)):
            yield (r.src_type, r.src_id), (r.dst_type, r.dst_id)


def _step(conn, frontier: list[tuple[str, str]], direction: str):
    by_type: dict[str, list[str]] = {}
    for node_type, node_id in frontier:
        by_type.setdefault(node_type, []).append(node_id)
    derived = _derived_downstream if direction == "downstream" else _derived_upstream
    for node_type, ids in by_type.items():
        yield from derived(conn, node_type, ids)
        yield from _stored(conn, node_type, ids, direction)


# -- labels ---------------------------------------------------------------------------
def _labels(conn, refs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    by_type: dict[str, list[str]] = {}
    for node_type, node_id in refs:
        by_type.setdefault(node_type, []).append(node_id)
    out: dict[tuple[str, str], str] = {}
    for node_type, ids in by_type.items():
        if node_type == "model_version":
            for r in conn.execute(select(t.model_versions.c.full_name, t.model_versions.c.version,
                                         t.model_versions.c.status, t.model_versions.c.deleted_at).where(
                    t.model_versions.c.full_name.in_(sorted({_version_key(i)[0] for i in ids})))):
                key = ("model_version", f"{r.full_name}/{r.version}")
                note = " (deleted)" if r.deleted_at is not None else ("" if r.status == "READY" else f" ({r.status})")
                out[key] = f"{r.full_name}/{r.version}{note}"
            continue
        for chunk in _chunks(ids):
            if node_type == "dataset":
                d = t.datasets.c
                for r in conn.execute(select(d.dataset_id, d.name, d.digest).where(d.dataset_id.in_(chunk))):
                    out[("dataset", r.dataset_id)] = f"{r.name}@{r.digest}"
            elif node_type == "run":
                for r in conn.execute(select(t.runs.c.run_id, t.runs.c.run_name).where(t.runs.c.run_id.in_(chunk))):
                    out[("run", r.run_id)] = r.run_name
            elif node_type == "logged_model":
                lm = t.logged_models.c
                for r in conn.execute(select(lm.model_id, lm.name).where(lm.model_id.in_(chunk))):
                    out[("logged_model", r.model_id)] = r.name
    return out


def get_lineage(conn, node_type: str, node_id: str, direction: str = "upstream", max_depth: int = 10) -> LineageGraph:
    """The nodes reachable from one node by following edges upstream (toward its sources) or
    downstream (toward what was made from it), at most ``max_depth`` steps away."""
    node_type = _node_type(node_type)
    if direction not in DIRECTIONS:
        raise InvalidArgumentError(f"Lineage direction must be 'upstream' or 'downstream', got {direction!r}")
    if not isinstance(max_depth, int) or not 0 <= max_depth <= 100:
        raise InvalidArgumentError(f"max_depth must be an integer from 0 to 100, got {max_depth!r}")
    if not isinstance(node_id, str) or not node_id:
        raise InvalidArgumentError(f"A {node_type} id must be a non-empty string, got {node_id!r}")
    root = (node_type, _root_id(conn, node_type, node_id))
    seen = {root: None}
    edges: dict[tuple, None] = {}
    frontier = [root]
    for _ in range(max_depth):
        if not frontier:
            break
        found = []
        for src, dst in _step(conn, frontier, direction):
            edges.setdefault((src, dst), None)
            other = dst if direction == "downstream" else src
            if other not in seen:
                seen[other] = None
                found.append(other)
        frontier = found
    labels = _labels(conn, list(seen))
    nodes = [Node(nt, ni, labels.get((nt, ni), ni)) for nt, ni in seen]
    return LineageGraph(root=nodes[0], direction=direction, nodes=nodes,
                        edges=[Edge(f"{s[0]}:{s[1]}", f"{d[0]}:{d[1]}") for s, d in edges])
