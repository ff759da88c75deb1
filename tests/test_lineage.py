"""Lineage: dataset → run → logged model → version → endpoint / batch job → table, both ways,
on SQLite and PostgreSQL. Tracking rows come from the store; registry rows are plain inserts."""

import contextlib
import json

import pytest
from sqlalchemy import func, select

from hangar.catalog import lineage as lin
from hangar.cli.main import main
from hangar.errors import InvalidArgumentError, NotFoundError
from hangar.store import schema as t
from hangar.tracking.entities import Dataset, DatasetInput

MODEL = "main.support.assistant"
V1, V2 = f"{MODEL}/1", f"{MODEL}/2"


@contextlib.contextmanager
def write(engine):
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def _version(conn, version, logged_model_id=None, run_id=None, status="READY", deleted_at=None):
    conn.execute(t.model_versions.insert().values(
        full_name=MODEL, version=version, source="src", logged_model_id=logged_model_id, run_id=run_id,
        storage_location=f"/registry/{version}", status=status, created_by="alice", created_at=1, updated_at=1,
        deleted_at=deleted_at))


@pytest.fixture
def graph(store):
    """train@d1 → run1 → logged model → v1 → endpoint support-bot, v1 → batch job nightly → table scored;
    raw table → nightly; eval@d2 → run2 → v2 (registered straight from the run)."""
    eid = store.create_experiment("support")
    run1 = store.create_run(eid, run_name="train-run").info.run_id
    run2 = store.create_run(eid, run_name="finetune-run").info.run_id
    store.log_inputs(run1, [DatasetInput(Dataset("train", "d1", "local", "/data/train.csv"), "training")])
    store.log_inputs(run2, [DatasetInput(Dataset("eval", "d2", "local", "/data/eval.csv"), "eval")])
    lm = store.create_logged_model(eid, "assistant", source_run_id=run1).model_id
    with write(store.engine) as conn:
        conn.execute(t.registered_models.insert().values(
            full_name=MODEL, catalog_name="main", schema_name="support", name="assistant", owner="alice",
            last_version=2, created_at=1, updated_at=1))
        _version(conn, 1, logged_model_id=lm, run_id=run1)
        _version(conn, 2, run_id=run2, status="PENDING")
        conn.execute(t.aliases.insert().values(full_name=MODEL, alias="champion", version=1, updated_by="alice",
                                               updated_at=1))
        assert lin.add_edge(conn, "model_version", V1, "endpoint", "support-bot")
        lin.add_edge(conn, "model_version", V1, "batch_job", "nightly")
        lin.add_edge(conn, "batch_job", "nightly", "table", "main.support.scored")
        lin.add_edge(conn, "table", "main.support.raw", "batch_job", "nightly")
    with store.engine.connect() as conn:
        ds = dict(conn.execute(select(t.datasets.c.name, t.datasets.c.dataset_id)).all())
    return {"store": store, "run1": run1, "run2": run2, "lm": lm, "train": ds["train"], "eval": ds["eval"]}


def lineage(store, node_type, node_id, direction="upstream", **kw):
    with store.engine.connect() as conn:
        return lin.get_lineage(conn, node_type, node_id, direction=direction, **kw)


def edges(g):
    return {(e.src, e.dst) for e in g.edges}


def test_downstream_from_a_dataset(graph):
    g = lineage(graph["store"], "dataset", graph["train"], "downstream")
    run1, lm, train = f"run:{graph['run1']}", f"logged_model:{graph['lm']}", f"dataset:{graph['train']}"
    assert g.root.key == train and g.root.label == "train@d1" and g.nodes[0] == g.root
    assert edges(g) == {
        (train, run1), (run1, lm), (lm, f"model_version:{V1}"),
        (f"model_version:{V1}", "endpoint:support-bot"), (f"model_version:{V1}", "batch_job:nightly"),
        ("batch_job:nightly", "table:main.support.scored"),
    }
    labels = {n.key: n.label for n in g.nodes}
    assert labels[run1] == "train-run" and labels[lm] == "assistant"
    assert labels[f"model_version:{V1}"] == V1
    assert labels["endpoint:support-bot"] == "support-bot"
    # the version carries run1 too, but through its logged model: no direct run → version edge
    assert (run1, f"model_version:{V1}") not in edges(g)
    assert [n.key for n in g.children(run1)] == [lm]


def test_upstream_from_an_endpoint(graph):
    g = lineage(graph["store"], "endpoint", "support-bot")
    assert [n.type for n in g.nodes] == ["endpoint", "model_version", "logged_model", "run", "dataset"]
    assert edges(g) == {
        (f"model_version:{V1}", "endpoint:support-bot"),
        (f"logged_model:{graph['lm']}", f"model_version:{V1}"),
        (f"run:{graph['run1']}", f"logged_model:{graph['lm']}"),
        (f"dataset:{graph['train']}", f"run:{graph['run1']}"),
    }
    assert [n.key for n in g.children("endpoint:support-bot")] == [f"model_version:{V1}"]


def test_version_registered_from_a_run(graph):
    up = lineage(graph["store"], "model_version", V2)
    assert edges(up) == {(f"run:{graph['run2']}", f"model_version:{V2}"),
                         (f"dataset:{graph['eval']}", f"run:{graph['run2']}")}
    assert up.root.label == f"{V2} (PENDING)"
    down = lineage(graph["store"], "run", graph["run2"], "downstream")
    assert edges(down) == {(f"run:{graph['run2']}", f"model_version:{V2}")}


def test_batch_job_has_inputs_and_outputs(graph):
    up = lineage(graph["store"], "table", "main.support.scored")
    keys = {n.key for n in up.nodes}
    assert {"batch_job:nightly", "table:main.support.raw", f"model_version:{V1}", f"dataset:{graph['train']}"} <= keys
    down = lineage(graph["store"], "table", "main.support.raw", "downstream")
    assert edges(down) == {("table:main.support.raw", "batch_job:nightly"),
                           ("batch_job:nightly", "table:main.support.scored")}


def test_depth_limits_the_walk(graph):
    s = graph["store"]
    assert [n.key for n in lineage(s, "endpoint", "support-bot", max_depth=0).nodes] == ["endpoint:support-bot"]
    g = lineage(s, "endpoint", "support-bot", max_depth=2)
    assert [n.type for n in g.nodes] == ["endpoint", "model_version", "logged_model"]


def test_cycles_end(graph):
    s = graph["store"]
    with write(s.engine) as conn:
        lin.add_edge(conn, "table", "main.support.scored", "batch_job", "nightly")
    g = lineage(s, "batch_job", "nightly", "downstream")
    assert edges(g) == {("batch_job:nightly", "table:main.support.scored"),
                        ("table:main.support.scored", "batch_job:nightly")}


def test_deleted_version_is_still_in_the_lineage(graph):
    s = graph["store"]
    with write(s.engine) as conn:
        _version(conn, 3, logged_model_id=graph["lm"], deleted_at=5)
    g = lineage(s, "logged_model", graph["lm"], "downstream")
    assert {n.label for n in g.nodes if n.type == "model_version"} == {V1, f"{MODEL}/3 (deleted)"}


def test_finding_nodes(graph):
    s = graph["store"]
    assert lineage(s, "dataset", "train@d1").root.id == graph["train"]
    assert lineage(s, "model_version", "models:/main.support.assistant/1").root.id == V1
    with s.engine.connect() as conn:
        assert lin.resolve_entity(conn, "models:/main.support.assistant@champion") == ("model_version", V1)
        assert lin.resolve_entity(conn, f"models:/{graph['lm']}") == ("logged_model", graph["lm"])
        assert lin.resolve_entity(conn, f"runs:/{graph['run1']}/model") == ("run", graph["run1"])
        assert lin.resolve_entity(conn, "endpoint:support-bot") == ("endpoint", "support-bot")
        with pytest.raises(NotFoundError):
            lin.resolve_entity(conn, "models:/main.support.assistant@nobody")
        with pytest.raises(InvalidArgumentError):
            lin.resolve_entity(conn, "spaceship:x")


@pytest.mark.parametrize("node_type,node_id", [
    ("dataset", "nope"), ("dataset", "train@zz"), ("run", "nope"), ("logged_model", "m-nope"),
    ("model_version", f"{MODEL}/9"), ("model_version", "main.support.other/1"),
    ("endpoint", "nope"), ("batch_job", "nope"), ("table", "nope"),
])
def test_unknown_node_is_not_found(graph, node_type, node_id):
    with pytest.raises(NotFoundError):
        lineage(graph["store"], node_type, node_id)


@pytest.mark.parametrize("kwargs,message", [
    ({"node_type": "spaceship"}, "node type"),
    ({"direction": "sideways"}, "direction"),
    ({"max_depth": -1}, "max_depth"),
    ({"node_type": "model_version", "node_id": "main.support.assistant"}, "catalog.schema.model/N"),
])
def test_bad_arguments(graph, kwargs, message):
    args = {"node_type": "endpoint", "node_id": "support-bot", **kwargs}
    with graph["store"].engine.connect() as conn, pytest.raises(InvalidArgumentError, match=message):
        lin.get_lineage(conn, **args)


def test_add_edge_is_idempotent_and_validated(graph):
    s = graph["store"]
    with write(s.engine) as conn:
        assert lin.add_edge(conn, "model_version", V1, "endpoint", "support-bot") is False
        assert lin.add_edge(conn, "model_version", V2, "endpoint", "support-bot") is True
        for bad, message in [
            (("dataset", graph["train"], "run", graph["run1"]), "derived"),
            (("run", graph["run1"], "model_version", V1), "derived"),
            (("table", "x", "table", "x"), "itself"),
            (("model_version", MODEL, "endpoint", "e"), "catalog.schema.model/N"),
            (("endpoint", "", "table", "x"), "non-empty"),
            (("endpoint", "e", "warehouse", "x"), "node type"),
        ]:
            with pytest.raises(InvalidArgumentError, match=message):
                lin.add_edge(conn, *bad)
    with s.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.lineage_edges)).scalar() == 5
    assert lineage(s, "endpoint", "support-bot").children("endpoint:support-bot")[1].id == V2


def test_graph_to_dict(graph):
    d = lineage(graph["store"], "model_version", V2).to_dict()
    assert d["root"] == f"model_version:{V2}" and d["direction"] == "upstream"
    assert {n["key"] for n in d["nodes"]} == {f"model_version:{V2}", f"run:{graph['run2']}",
                                              f"dataset:{graph['eval']}"}
    json.dumps(d)


# -- the command line ------------------------------------------------------------------------
def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_.value.code or 0, out.out, out.err


@pytest.fixture
def cli_graph(graph, tmp_path, monkeypatch):
    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HANGAR_TRACKING_URI", graph["store"].uri)
    monkeypatch.setenv("COLUMNS", "200")
    return graph


def test_cli_tree_and_json(capsys, cli_graph):
    code, out, _ = run(capsys, "lineage", "endpoint", "support-bot")
    assert code == 0
    for text in ("upstream lineage of endpoint support-bot", V1, "assistant", "train-run", "train@d1"):
        assert text in out
    assert out.index(V1) < out.index("train-run") < out.index("train@d1")
    code, out, _ = run(capsys, "lineage", "dataset", "train@d1", "--direction", "downstream", "--json")
    data = json.loads(out)
    assert code == 0 and data["direction"] == "downstream" and "endpoint:support-bot" in {n["key"] for n in data["nodes"]}
    code, out, _ = run(capsys, "lineage", "models:/main.support.assistant@champion", "--direction", "downstream")
    assert code == 0 and "support-bot" in out and "main.support.scored" in out


def test_cli_node_reached_twice_is_shown_once(capsys, cli_graph):
    s = cli_graph["store"]
    with write(s.engine) as conn:
        lin.add_edge(conn, "model_version", V1, "table", "main.support.scored")
    code, out, _ = run(capsys, "lineage", "dataset", cli_graph["train"], "--direction", "downstream")
    assert code == 0 and out.count("main.support.scored") == 2 and out.count("(shown above)") == 1
    code, out, _ = run(capsys, "lineage", "table", "main.support.scored", "--depth", "2")
    assert code == 0 and "main.support.raw" in out and "train-run" not in out


def test_cli_errors(capsys, cli_graph):
    code, _, err = run(capsys, "lineage", "run", "nope")
    assert code == 3 and "No run 'nope'" in err
    code, _, err = run(capsys, "lineage", "spaceship", "x")
    assert code == 1 and "node type" in err
    code, _, err = run(capsys, "lineage", "run", "x", "--direction", "sideways")
    assert code == 2
