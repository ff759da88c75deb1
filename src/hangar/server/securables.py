"""How a route finds its securable in a request: from the path, the body or the store."""

from __future__ import annotations

from hangar.catalog import names
from hangar.errors import InvalidArgumentError
from hangar.governance import privileges as pv


def metastore(ctx) -> str:
    return pv.METASTORE_NAME


def path(param: str):
    def resolve(ctx) -> str:
        return ctx.path_params[param]
    resolve.__doc__ = f"the path parameter {{{param}}}"
    return resolve


def model_in_path(ctx) -> str:
    return names.model_name(ctx.path_params["name"])[0]


def _body_str(ctx, field: str) -> str:
    value = ctx.body.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"The request needs the field {field!r} (a string)")
    return value


def catalog_of_schema_in_body(ctx) -> str:
    """The catalog of the schema ``c.s`` named by the body's ``name``."""
    return names.schema_name(_body_str(ctx, "name"))[0]


def schema_of_model_in_body(ctx) -> str:
    """The schema ``c.s`` of the model named by the body's ``name``."""
    _, cat, sch, _ = names.model_name(_body_str(ctx, "name"))
    return f"{cat}.{sch}"


def experiment_in_body(ctx) -> str:
    value = ctx.body.get("experiment_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).isdecimal():
        raise InvalidArgumentError("The request needs 'experiment_id' (an experiment's numeric id)")
    return str(value)


def experiment_of_run(ctx) -> str | None:
    """The experiment of the run ``{run_id}``; None when there is no such run (memoised per process, see
    ``context.RunExperiments``)."""
    return _experiment_of_run_id(ctx, ctx.path_params["run_id"])


def _experiment_of_run_id(ctx, run_id: str) -> str | None:
    memo = ctx.services.run_experiments
    eid = memo.get(run_id)
    if eid is not None:
        return eid
    from sqlalchemy import select

    from hangar.store import schema as t

    with ctx.engine.connect() as conn:
        eid = conn.execute(select(t.runs.c.experiment_id).where(t.runs.c.run_id == run_id)).scalar()
    if eid is None:
        return None
    memo.remember(run_id, str(eid))
    return str(eid)


def securable_type_in_path(ctx) -> str:
    return pv.check_securable_type(ctx.path_params["securable_type"])


def experiment_in_path(ctx) -> str | None:
    """The experiment ``{experiment_id}``; None for an id that is not a number (the store says why)."""
    value = ctx.path_params["experiment_id"]
    return value if value.isdecimal() and len(value) <= 18 else None


def experiment_of_logged_model(ctx) -> str | None:
    """The experiment of the logged model ``{model_id}``; None when there is no such model."""
    return _experiment_of_logged_model_id(ctx, ctx.path_params["model_id"])


def _experiment_of_logged_model_id(ctx, model_id: str) -> str | None:
    from sqlalchemy import select

    from hangar.store import schema as t

    with ctx.engine.connect() as conn:
        eid = conn.execute(select(t.logged_models.c.experiment_id).where(
            t.logged_models.c.model_id == model_id)).scalar()
    return None if eid is None else str(eid)


def endpoint_in_path(ctx) -> str:
    from hangar.serving.endpoint_config import check_endpoint_name

    return check_endpoint_name(ctx.path_params["name"])


def models_of_endpoint_in_body(ctx) -> list[tuple[str, str | None, str]]:
    """What serving the body's endpoint config uses: EXECUTE on each registered model it serves, READ on
    the experiment of each run or logged model it serves from (a local path names nothing governed)."""
    from hangar.server.handlers.endpoints import config_in_body
    from hangar.uri import is_remote_uri, parse_model_uri

    needs = []
    for entity in config_in_body(ctx).served_entities:
        if not is_remote_uri(entity.model):
            continue
        uri = parse_model_uri(entity.model)
        if uri.scheme == "runs":
            needs.append((pv.EXPERIMENT, _experiment_of_run_id(ctx, uri.run_id), pv.READ))
        elif uri.logged_model_id:
            needs.append((pv.EXPERIMENT, _experiment_of_logged_model_id(ctx, uri.logged_model_id), pv.READ))
        else:
            needs.append((pv.REGISTERED_MODEL, names.model_name(uri.name)[0], pv.EXECUTE))
    return needs


# -- a lineage edge in the body: which end governs it ------------------------------------------
_RUN_NODES = ("batch_job", "run")  # a batch job's id is its run's id


def _edge_governor(ctx) -> tuple[str, str | None]:
    """The node of the body's edge whose securable decides: ('model_version', id), ('batch_job' or 'run',
    id), or ('', None) for an edge that names neither (only a metastore admin may write it)."""
    from hangar.catalog.lineage import NODE_TYPES

    ends = []
    for end in ("src", "dst"):
        node_type, node_id = _body_str(ctx, f"{end}_type"), _body_str(ctx, f"{end}_id")
        if node_type not in NODE_TYPES:
            raise InvalidArgumentError(f"Unknown lineage node type {node_type!r}: use one of {', '.join(NODE_TYPES)}")
        ends.append((node_type, node_id))
    for wanted in (("model_version",), _RUN_NODES):
        for node_type, node_id in ends:
            if node_type in wanted:
                return node_type, node_id
    return "", None


def lineage_edge_type(ctx) -> str:
    kind = _edge_governor(ctx)[0]
    return pv.REGISTERED_MODEL if kind == "model_version" else pv.EXPERIMENT if kind else pv.METASTORE


def lineage_edge_privilege(ctx) -> str:
    kind = _edge_governor(ctx)[0]
    return pv.EXECUTE if kind == "model_version" else pv.EDIT if kind else pv.MANAGE


def lineage_edge_securable(ctx) -> str | None:
    """The registered model of a model_version end, else the experiment of a batch_job / run end (None
    when no such run exists), else the metastore."""
    kind, node_id = _edge_governor(ctx)
    if kind == "model_version":
        name, sep, number = node_id.rpartition("/")
        if not sep or not name or not number.isdecimal():
            raise InvalidArgumentError(f"A model version's id is 'catalog.schema.model/N', got {node_id!r}")
        return names.model_name(name)[0]
    return _experiment_of_run_id(ctx, node_id) if kind else pv.METASTORE_NAME
