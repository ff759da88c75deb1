"""The route table, walked: every guarded route denies a principal that lacks its privilege
(403, nothing changed but the audit log), and allows one that holds exactly that privilege.

Runs against a real server on loopback over SQLite and over PostgreSQL."""

from __future__ import annotations

import contextlib
import re

import pytest
from server_fixtures import start_hub
from sqlalchemy import select

import hangar.pyfunc as hp
from hangar.governance import grants as g
from hangar.governance import privileges as pv
from hangar.server.context import RequestContext
from hangar.server.routes import ROUTES
from hangar.server.spec import AUTHENTICATED, PUBLIC, Requires
from hangar.store import schema as t

M = "cat.sch.m"
# Routes any authenticated caller may call: each filters its results, acts only on the caller's
# own records, or makes the caller the owner of what it creates. Adding one is a conscious act.
OPEN_TO_ANY_PRINCIPAL = {"WHOAMI", "LIST_MY_GRANTS", "CREATE_TOKEN", "LIST_TOKENS", "REVOKE_TOKEN", "LIST_PRINCIPALS",
                         "LIST_AUDIT", "LIST_CATALOGS", "SEARCH_MODELS", "CREATE_EXPERIMENT", "SEARCH_EXPERIMENTS",
                         "SEARCH_RUNS", "GET_EXPERIMENT_BY_NAME", "SEARCH_LOGGED_MODELS", "GET_LINEAGE",
                         "CREATE_ENDPOINT", "LIST_ENDPOINTS"}
PUBLIC_ROUTES = {"HEALTH", "READY", "OPENAPI"}
# The file each artifact-deleting example names (the world writes them): a denied delete must leave it there.
DELETED_FILES = {"DELETE_RUN_ARTIFACT": "notes.txt", "DELETE_LOGGED_MODEL_ARTIFACT": "draft-lm.txt",
                 "DELETE_VERSION_ARTIFACT": "draft-mv.txt"}


def examples(w):
    """(path params, JSON body, query) for each guarded route, filled from the world ``w``."""
    run, exp, lm, lm_pending = w["run_id"], w["experiment_id"], w["lm"], w["lm_pending"]
    mv, mv_up = {"name": M, "version": "1"}, {"name": M, "version": str(w["pending_versions"][1])}
    dataset = {"name": "d", "digest": "x", "source_type": "code", "source": ""}
    grant_path = {"securable_type": "registered_model", "securable": M}
    return {
        "CREATE_PRINCIPAL": ({}, {"name": "mallory", "kind": "user"}, {}),
        "GET_PRINCIPAL": ({"principal": "team"}, None, {}),
        "ADD_MEMBER": ({"principal": "team"}, {"member": "admin"}, {}),
        "REMOVE_MEMBER": ({"principal": "team", "member": "member1"}, None, {}),
        "CREATE_TOKEN_FOR": ({"principal": "admin"}, {"name": "stolen"}, {}),
        "LIST_GRANTS": (grant_path, None, {}),
        "GRANT": (grant_path, {"principal": "member1", "privilege": "MANAGE"}, {}),
        "REVOKE": (grant_path, None, {"principal": "member1", "privilege": "EXECUTE"}),
        "CREATE_CATALOG": ({}, {"name": "cat2"}, {}),
        "GET_CATALOG": ({"catalog": "cat"}, None, {}),
        "DELETE_CATALOG": ({"catalog": "empty"}, None, {}),
        "LIST_SCHEMAS": ({"catalog": "cat"}, None, {}),
        "CREATE_SCHEMA": ({}, {"name": "cat.sch2"}, {}),
        "GET_SCHEMA": ({"schema": "cat.sch"}, None, {}),
        "DELETE_SCHEMA": ({"schema": "cat.empty"}, None, {}),
        "CREATE_MODEL": ({}, {"name": "cat.sch.m2"}, {}),
        "GET_MODEL": ({"name": M}, None, {}),
        "UPDATE_MODEL": ({"name": M}, {"comment": "changed"}, {}),
        "DELETE_MODEL": ({"name": M}, None, {"force": "true"}),
        "SET_MODEL_TAG": ({"name": M, "key": "k"}, {"value": "changed"}, {}),
        "DELETE_MODEL_TAG": ({"name": M, "key": "k"}, None, {}),
        "LIST_VERSIONS": ({"name": M}, None, {}),
        "GET_VERSION": ({"name": M, "version": "1"}, None, {}),
        "UPDATE_VERSION": ({"name": M, "version": "1"}, {"comment": "changed"}, {}),
        "DELETE_VERSION": ({"name": M, "version": "1"}, None, {"force": "true"}),
        "SET_VERSION_TAG": ({"name": M, "version": "1", "key": "k"}, {"value": "changed"}, {}),
        "GET_ALIAS": ({"name": M, "alias": "champion"}, None, {}),
        "SET_ALIAS": ({"name": M, "alias": "challenger"}, {"version": 1}, {}),
        "DELETE_ALIAS": ({"name": M, "alias": "champion"}, None, {}),
        "ALIAS_HISTORY": ({"name": M}, None, {}),
        "GET_EXPERIMENT": ({"experiment_id": exp}, None, {}),
        "CREATE_RUN": ({}, {"experiment_id": exp, "run_name": "sneaky"}, {}),
        "GET_RUN": ({"run_id": run}, None, {}),
        "UPDATE_RUN": ({"run_id": run}, {"status": "KILLED"}, {}),
        "LOG_BATCH": ({"run_id": run}, {"metrics": [{"key": "acc", "value": 0.1}], "params": {"p": "2"}}, {}),
        "METRIC_HISTORY": ({"run_id": run, "key": "acc"}, None, {}),
        "CREATE_VERSION": ({"name": M}, {"source": "/elsewhere/pkg"}, {}),
        "FINALIZE_VERSION": ({"name": M, "version": str(w["pending_versions"][0])}, {"status": "FAILED"}, {}),
        "LOAD_VERSION": ({"name": M}, None, {"version": "1"}),
        "VERIFY_AUDIT": ({}, None, {}),
        "ADD_LINEAGE_EDGE": ({}, {"src_type": "table", "src_id": "in.parquet", "dst_type": "batch_job", "dst_id": run},
                             {}),
        "DELETE_EXPERIMENT": ({"experiment_id": exp}, None, {}),
        "RESTORE_EXPERIMENT": ({"experiment_id": exp}, None, {}),
        "SET_EXPERIMENT_TAG": ({"experiment_id": exp}, {"key": "k", "value": "changed"}, {}),
        "DELETE_RUN": ({"run_id": run}, None, {}),
        "RESTORE_RUN": ({"run_id": run}, None, {}),
        "LOG_PARAM": ({"run_id": run}, {"key": "p2", "value": "1"}, {}),
        "LOG_METRIC": ({"run_id": run}, {"key": "acc", "value": 0.5}, {}),
        "SET_TAG": ({"run_id": run}, {"key": "t0", "value": "changed"}, {}),
        "DELETE_TAG": ({"run_id": run}, None, {"key": "t0"}),
        "LOG_INPUTS": ({"run_id": run}, {"inputs": [{"dataset": dataset, "context": "train"}]}, {}),
        "FIND_LOGGED_MODEL": ({"run_id": run, "name": "lm"}, None, {}),
        "CREATE_LOGGED_MODEL": ({}, {"experiment_id": exp, "name": "lm2"}, {}),
        "GET_LOGGED_MODEL": ({"model_id": lm}, None, {}),
        "FINALIZE_LOGGED_MODEL": ({"model_id": lm_pending}, {"status": "FAILED"}, {}),
        "SET_LOGGED_MODEL_TAGS": ({"model_id": lm}, {"tags": {"a": "b"}}, {}),
        "LOG_LOGGED_MODEL_METRICS": ({"model_id": lm}, {"metrics": [{"key": "m", "value": 1.0}]}, {}),
        "LIST_RUN_ARTIFACTS": ({"run_id": run}, None, {}),
        "DOWNLOAD_RUN_ARTIFACT": ({"run_id": run, "path": "notes.txt"}, None, {}),
        "UPLOAD_RUN_ARTIFACT": ({"run_id": run, "path": "new.txt"}, None, {}),
        "LIST_LOGGED_MODEL_ARTIFACTS": ({"model_id": lm}, None, {}),
        "DOWNLOAD_LOGGED_MODEL_ARTIFACT": ({"model_id": lm, "path": "MLmodel"}, None, {}),
        "UPLOAD_LOGGED_MODEL_ARTIFACT": ({"model_id": lm_pending, "path": "x.txt"}, None, {}),
        "LIST_VERSION_ARTIFACTS": (mv, None, {}),
        "DOWNLOAD_VERSION_ARTIFACT": ({**mv, "path": "MLmodel"}, None, {}),
        "UPLOAD_VERSION_ARTIFACT": ({**mv_up, "path": "x.txt"}, None, {}),
        "GET_ENDPOINT": ({"name": "ep"}, None, {}),
        "UPDATE_ENDPOINT": ({"name": "ep"}, {"config": {"served_entities": [{"model": "/srv/pkg", "weight": 5}]}}, {}),
        "DELETE_ENDPOINT": ({"name": "ep"}, None, {}),
        "QUERY_ENDPOINT": ({"name": "ep"}, None, {}),
        "QUERY_REGISTERED_MODEL": ({"name": M}, None, {}),
        "DELETE_RUN_ARTIFACT": ({"run_id": run, "path": DELETED_FILES["DELETE_RUN_ARTIFACT"]}, None, {}),
        "DELETE_LOGGED_MODEL_ARTIFACT": ({"model_id": w["lm_draft"], "path": DELETED_FILES["DELETE_LOGGED_MODEL_ARTIFACT"]},
                                         None, {}),
        "DELETE_VERSION_ARTIFACT": ({**mv_up, "path": DELETED_FILES["DELETE_VERSION_ARTIFACT"]}, None, {}),
    }


@pytest.fixture
def world(store_uri, tmp_path, package):
    with permission_world(store_uri, tmp_path, package) as w:
        yield w


@contextlib.contextmanager
def permission_world(store_uri, tmp_path, package):
    """A running server whose store holds one of everything the routes name (``examples`` fills from it)."""
    from hangar.artifacts import get_artifact_repository
    from hangar.catalog.client import Client

    server, hub = start_hub(store_uri, tmp_path)
    with server:
        a = hub.admin()
        for path, body in [("/catalogs", {"name": "cat"}), ("/catalogs", {"name": "empty"}),
                           ("/schemas", {"name": "cat.sch"}), ("/schemas", {"name": "cat.empty"}),
                           ("/models", {"name": M, "tags": {"k": "v"}}),
                           ("/principals", {"name": "team", "kind": "group"}), ("/principals", {"name": "member1"}),
                           ("/principals/team/members", {"member": "member1"}),
                           ("/endpoints", {"name": "ep", "config": {"served_entities": [{"model": "/srv/pkg"}]}})]:
            assert a.post(path, json=body).status_code in (200, 201), (path, a.post(path, json=body).text)
        c = Client(store_uri, str(tmp_path / "artifacts"), actor="admin")
        c.register_model(package, M)
        c.set_model_version_tag(M, 1, "k", "v")
        pending_mvs = [c.registry.begin_version(M, "/elsewhere/pkg") for _ in range(2)]
        pending = [mv.version for mv in pending_mvs]
        get_artifact_repository(pending_mvs[1].storage_location).write_text(DELETED_FILES["DELETE_VERSION_ARTIFACT"], "d")
        assert a.put(f"/models/{M}/aliases/champion", json={"version": 1}).status_code == 200
        assert a.post(f"/grants/registered_model/{M}", json={"principal": "member1", "privilege": "EXECUTE"}).status_code == 201
        exp = a.post("/experiments", json={"name": "exp"}).json()["experiment_id"]
        run = a.post("/runs", json={"experiment_id": exp}).json()["info"]["run_id"]
        assert a.post(f"/runs/{run}/log-batch", json={"metrics": [{"key": "acc", "value": 0.9}],
                                                      "tags": {"t0": "v"}}).status_code == 200
        from hinted_model import HintedLen  # (on sys.path: the package fixture put it there)

        from hangar.tracking.logged_models import log_model

        lm = log_model(hp.save_model, "lm", HintedLen(), run_id=run, client=c).model_id
        lm_pending = c.store.create_logged_model(exp, "lm-pending").model_id
        lm_draft = c.store.create_logged_model(exp, "lm-draft").model_id  # stays PENDING (lm_pending is finalized)
        c.store.logged_model_artifacts(lm_draft).write_text(DELETED_FILES["DELETE_LOGGED_MODEL_ARTIFACT"], "d")
        c.log_text(run, "hello", "notes.txt")
        c.store.close()
        yield hub, server, {"experiment_id": exp, "run_id": run, "lm": lm, "lm_pending": lm_pending,
                            "lm_draft": lm_draft, "pending_versions": pending, "artifacts": tmp_path / "artifacts"}


def snapshot(engine, artifacts) -> dict:
    """Every row of every table but the audit log (denials are recorded there on purpose) and the
    tokens' last-use time (authentication writes it); and every file under the artifact root."""
    out = {"files": sorted((p.relative_to(artifacts).as_posix(), p.read_bytes()) for p in artifacts.rglob("*")
                           if p.is_file())}
    with engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            if table.name == "audit_log":
                continue
            cols = [c for c in table.c if not (table.name == "tokens" and c.name == "last_used_at")]
            out[table.name] = sorted(tuple(str(v) for v in row) for row in conn.execute(select(*cols)))
    return out


def _securable(server, route, params, body, query):
    """(securable type, securable, privilege) that the route's requirement resolves to for this request."""
    ctx = RequestContext(server.app.state.services, params, query, body or {}, "test")
    req = route.requires
    kind = req.securable_type(ctx) if callable(req.securable_type) else req.securable_type
    privilege = req.privilege(ctx) if callable(req.privilege) else req.privilege
    assert privilege in pv.APPLICABLE[kind], route.name
    return kind, pv.normalise(kind, req.securable(ctx)), privilege


def _grant_all_but(engine, user: str, kind: str, name: str, required: str) -> None:
    """Every privilege on the securable and its ancestors except those that would give ``required``."""
    for level_type, level in pv.chain(kind, name):
        for privilege in pv.GRANTABLE[level_type]:
            if required not in pv.effective(privilege, kind):
                g.grant(engine, level_type, level, user, privilege, actor="test")


def _grant_exactly(engine, user: str, kind: str, name: str, required: str, skip: int | None = None) -> None:
    """The route's privilege plus USE_CATALOG / USE_SCHEMA on the way to it (leaving out requirement ``skip``)."""
    levels = pv.chain(kind, name)
    for k, (index, privilege) in enumerate(pv.requirements(kind, name, required)):
        if k != skip:
            g.grant(engine, *levels[index], user, privilege, actor="test")


def _call(hub, token, route, params, body, query):
    path = re.sub(r"{(\w+):path}", r"{\1}", route.path).format(**params)
    with hub.client(token) as http:
        return http.request(route.method, path.removeprefix("/api/v1"), json=body, params=query)


def test_every_route_is_in_the_table_with_one_requirement():
    names = [r.name for r in ROUTES]
    assert len(names) == len(set(names))
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)
    assert {r.name for r in ROUTES if r.requires is PUBLIC} == PUBLIC_ROUTES
    assert {r.name for r in ROUTES if r.requires is AUTHENTICATED} == OPEN_TO_ANY_PRINCIPAL
    for r in ROUTES:
        if isinstance(r.requires, Requires):
            if callable(r.requires.privilege):  # resolved per request; the walks check what it resolves to
                assert callable(r.requires.securable_type), r.name
                continue
            kinds = pv.SECURABLE_TYPES if callable(r.requires.securable_type) else [r.requires.securable_type]
            assert any(r.requires.privilege in pv.APPLICABLE[k] for k in kinds), r.name


def test_every_guarded_route_denies_without_its_privilege_and_changes_nothing(world):
    hub, server, w = world
    ex = examples(w)
    guarded = [r for r in ROUTES if isinstance(r.requires, Requires)]
    assert {r.name for r in guarded} == set(ex), "every guarded route needs an example here"
    nobody = hub.user("nobody")
    failures = []
    for i, route in enumerate(guarded):
        params, body, query = ex[route.name]
        kind, name, privilege = _securable(server, route, params, body, query)
        almost = f"almost{i}"
        almost_token = hub.user(almost)
        _grant_all_but(hub.engine, almost, kind, name, privilege)
        callers = [("no grants", nobody), ("all but the one", almost_token)]
        for k, (_, missing) in enumerate(pv.requirements(kind, name, privilege)[1:], start=1):
            user = f"nouse{i}_{k}"  # the privilege itself, but not the USE_CATALOG / USE_SCHEMA it also needs
            callers.append((f"without {missing}", hub.user(user)))
            _grant_exactly(hub.engine, user, kind, name, privilege, skip=k)
        for who, token in callers:
            before = snapshot(hub.engine, w["artifacts"])
            if route.name in DELETED_FILES and not [f for f, _ in before["files"]
                                                    if f.endswith("/" + DELETED_FILES[route.name])]:
                failures.append(f"{route.name} ({who}): the file it names is not there to keep")
                continue  # (the check below must see the file that a denied delete leaves in place)
            resp = _call(hub, token, route, params, body, query)
            after = snapshot(hub.engine, w["artifacts"])
            if resp.status_code != 403 or resp.json()["error_code"] != "PERMISSION_DENIED":
                failures.append(f"{route.name} ({who}): {resp.status_code} {resp.text[:200]}")
            elif before != after:
                failures.append(f"{route.name} ({who}): the store changed: "
                                f"{[k for k in before if before[k] != after[k]]}")
            else:
                with hub.admin() as a:
                    rec = a.get("/audit", params={"limit": 1, "action": route.name}).json()["records"]
                assert rec and rec[0]["outcome"] == "DENIED" and rec[0]["request_id"] == resp.headers["x-request-id"]
    assert not failures, "\n".join(failures)


def test_every_guarded_route_allows_exactly_its_privilege(world):
    hub, server, w = world
    ex = examples(w)
    # deletes last, those of artifacts first among them (before their owners are deleted)
    guarded = sorted((r for r in ROUTES if isinstance(r.requires, Requires)),
                     key=lambda r: (r.method == "DELETE", r.name not in DELETED_FILES))
    failures = []
    for i, route in enumerate(guarded):
        params, body, query = ex[route.name]
        kind, name, privilege = _securable(server, route, params, body, query)
        user = f"exact{i}"
        token = hub.user(user)
        _grant_exactly(hub.engine, user, kind, name, privilege)
        resp = _call(hub, token, route, params, body, query)
        if resp.status_code in (401, 403) or resp.status_code >= 500:
            failures.append(f"{route.name}: {resp.status_code} {resp.text[:200]}")
        elif route.name in DELETED_FILES and resp.json() != {"deleted": DELETED_FILES[route.name]}:
            failures.append(f"{route.name}: {resp.status_code} {resp.text[:200]}")
    assert not failures, "\n".join(failures)


def _edges(engine) -> set:
    with engine.connect() as conn:
        return set(conn.execute(select(t.lineage_edges.c.src_type, t.lineage_edges.c.src_id, t.lineage_edges.c.dst_type,
                                       t.lineage_edges.c.dst_id)).all())


def test_a_lineage_edge_needs_execute_on_the_version_it_names_else_edit_on_the_run(world):
    """ADD_LINEAGE_EDGE: an edge naming a model_version needs EXECUTE on its model (the walks above cover
    the batch_job branch with a table → job edge); holding the other branch's privilege is not enough."""
    hub, _, w = world
    run = w["run_id"]
    uses_model = {"src_type": "model_version", "src_id": f"{M}/1", "dst_type": "batch_job", "dst_id": run}
    job_only = {"src_type": "batch_job", "src_id": run, "dst_type": "table", "dst_id": "out.parquet"}
    editor, executor = hub.user("editor"), hub.user("executor")
    g.grant(hub.engine, pv.EXPERIMENT, str(w["experiment_id"]), "editor", pv.EDIT, actor="test")
    _grant_exactly(hub.engine, "executor", pv.REGISTERED_MODEL, M, pv.EXECUTE)
    before = _edges(hub.engine)
    for token, body in [(editor, uses_model), (executor, job_only)]:
        with hub.client(token) as http:
            resp = http.post("/lineage/edges", json=body)
        assert resp.status_code == 403 and resp.json()["error_code"] == "PERMISSION_DENIED", resp.text
    assert _edges(hub.engine) == before
    for token, body in [(executor, uses_model), (editor, job_only)]:
        with hub.client(token) as http:
            assert http.post("/lineage/edges", json=body).json() == {"created": True}
            assert http.post("/lineage/edges", json=body).json() == {"created": False}  # idempotent
    assert _edges(hub.engine) - before == {("model_version", f"{M}/1", "batch_job", run),
                                           ("batch_job", run, "table", "out.parquet")}


@pytest.mark.parametrize("body, words", [
    ({"src_type": "spreadsheet", "src_id": "x", "dst_type": "batch_job", "dst_id": "RUN"}, "Unknown lineage node type"),
    ({"src_type": "dataset", "src_id": "d", "dst_type": "run", "dst_id": "RUN"}, "derived"),
    ({"src_type": "table", "src_id": "x", "dst_type": "batch_job"}, "dst_id"),
    ({}, "src_type"),
    ({"src_type": "table", "src_id": 7, "dst_type": "batch_job", "dst_id": "RUN"}, "src_id"),
    ({"src_type": "model_version", "src_id": "cat.sch.m", "dst_type": "endpoint", "dst_id": "e"}, "catalog.schema.model/N"),
    ({"src_type": "batch_job", "src_id": "RUN", "dst_type": "batch_job", "dst_id": "RUN"}, "itself"),
])
def test_a_bad_lineage_edge_is_a_400_never_a_500(world, body, words):
    hub, _, w = world
    body = {k: (w["run_id"] if v == "RUN" else v) for k, v in body.items()}
    before = _edges(hub.engine)
    with hub.admin() as a:
        resp = a.post("/lineage/edges", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST") and words in resp.json()["message"]
    assert _edges(hub.engine) == before
