"""The tracking store, on SQLite, on PostgreSQL and through a real server (each test runs on all three)."""

import math

import pytest

from hangar.errors import AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError
from hangar.tracking.entities import Metric


@pytest.fixture(params=["sqlite", "postgresql", "server"])
def store_uri(request, tmp_path):
    from conftest import backend_uri

    return backend_uri(request, tmp_path)


def test_default_experiment_exists(store):
    exp = store.get_experiment("0")
    assert exp.name == "Default" and exp.lifecycle_stage == "active"
    run = store.create_run()
    assert run.info.experiment_id == "0" and run.info.status == "RUNNING"


def test_experiments_create_get_delete_restore(store):
    eid = store.create_experiment("fraud", tags={"team": "risk"})
    exp = store.get_experiment(eid)
    assert exp.name == "fraud" and exp.tags == {"team": "risk"} and exp.artifact_location.endswith(f"/{eid}")
    assert store.get_experiment_by_name("fraud").experiment_id == eid
    assert store.get_experiment_by_name("nope") is None
    with pytest.raises(AlreadyExistsError, match="already exists"):
        store.create_experiment("fraud")
    run = store.create_run(eid)
    store.delete_experiment(eid)
    assert store.get_experiment(eid).lifecycle_stage == "deleted"
    assert store.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(InvalidArgumentError, match="is deleted"):
        store.create_run(eid)
    store.restore_experiment(eid)
    assert store.get_run(run.info.run_id).info.lifecycle_stage == "active"
    with pytest.raises(InvalidArgumentError, match="cannot be deleted"):
        store.delete_experiment("0")
    with pytest.raises(NotFoundError):
        store.get_experiment("999")
    with pytest.raises(InvalidArgumentError, match="must be a number"):
        store.get_experiment("abc")


def test_params_are_immutable(store):
    rid = store.create_run().info.run_id
    store.log_param(rid, "lr", 0.01)
    store.log_param(rid, "lr", "0.01")  # same value again: fine
    with pytest.raises(ConflictError, match="immutable"):
        store.log_param(rid, "lr", 0.02)
    assert store.get_run(rid).data.params == {"lr": "0.01"}


def test_metric_history_and_latest(store):
    rid = store.create_run().info.run_id
    store.log_metric(rid, "loss", 1.0, timestamp=10, step=0)
    store.log_metric(rid, "loss", 0.5, timestamp=20, step=2)
    store.log_metric(rid, "loss", 0.7, timestamp=30, step=1)  # an older step arrives late
    history = store.get_metric_history(rid, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.7), (2, 0.5)]
    assert store.get_run(rid).data.metrics == {"loss": 0.5}  # latest = highest step


def test_log_batch_is_all_or_nothing(store):
    rid = store.create_run().info.run_id
    with pytest.raises(InvalidArgumentError, match="not finite"):
        store.log_batch(rid, metrics=[Metric("ok", 1.0, 1, 0), Metric("bad", math.nan, 1, 0)],
                        params={"p": 1}, tags={"t": "x"})
    run = store.get_run(rid)
    assert run.data.metrics == {} and run.data.params == {} and run.data.tags == {}
    with pytest.raises(ConflictError):
        store.log_param(rid, "a", 1) or store.log_batch(rid, metrics=[Metric("m", 1.0, 1, 0)], params={"a": 2})
    assert store.get_metric_history(rid, "m") == []


@pytest.mark.parametrize("bad,match", [
    (lambda s, r: s.log_param(r, "", 1), "non-empty"),
    (lambda s, r: s.log_param(r, "../x", 1), "Invalid param name"),
    (lambda s, r: s.log_param(r, "k" * 251, 1), "limit is 250"),
    (lambda s, r: s.log_param(r, "big", "x" * 6001), "limit is 6000"),
    (lambda s, r: s.log_metric(r, "m", float("inf")), "not finite"),
    (lambda s, r: s.log_metric(r, "m", "high"), "must be a number"),
    (lambda s, r: s.log_metric(r, "m", 1.0, step=1.5), "step must be an integer"),
    (lambda s, r: s.update_run_info(r, status="DONE"), "Unknown run status"),
])
def test_bad_input_is_specific_and_stores_nothing(store, bad, match):
    rid = store.create_run().info.run_id
    with pytest.raises(InvalidArgumentError, match=match):
        bad(store, rid)
    run = store.get_run(rid)
    assert run.data.params == {} and run.data.metrics == {} and run.info.status == "RUNNING"


def test_unknown_and_deleted_runs(store):
    with pytest.raises(NotFoundError, match="No run"):
        store.log_metric("f" * 32, "m", 1.0)
    with pytest.raises(NotFoundError):
        store.get_run("nope")
    rid = store.create_run().info.run_id
    store.delete_run(rid)
    with pytest.raises(InvalidArgumentError, match="is deleted"):
        store.log_metric(rid, "m", 1.0)
    store.restore_run(rid)
    store.log_metric(rid, "m", 1.0)
    assert store.get_run(rid).data.metrics == {"m": 1.0}


def test_tags_and_terminate(store):
    rid = store.create_run(run_name="first", tags={"a": "1"}).info.run_id
    store.set_tag(rid, "a", "2")
    store.set_tag(rid, "b", "x")
    store.delete_tag(rid, "b")
    with pytest.raises(NotFoundError):
        store.delete_tag(rid, "b")
    store.update_run_info(rid, status="FINISHED", end_time=123, run_name="renamed")
    run = store.get_run(rid)
    assert run.data.tags == {"a": "2"} and run.info.status == "FINISHED" and run.info.end_time == 123
    assert run.info.run_name == "renamed"


def test_nested_runs_record_their_parent(store):
    parent = store.create_run().info.run_id
    child = store.create_run(parent_run_id=parent).info
    assert child.parent_run_id == parent
    with pytest.raises(NotFoundError):
        store.create_run(parent_run_id="missing")


def test_datasets_are_deduplicated_per_experiment(store):
    from hangar.tracking.entities import Dataset, DatasetInput

    ds = Dataset("questions", "abc123", "code", "", '[{"type": "string"}]', '{"num_rows": 3}')
    r1 = store.create_run().info.run_id
    r2 = store.create_run().info.run_id
    store.log_inputs(r1, [DatasetInput(ds, "eval")])
    store.log_inputs(r1, [DatasetInput(ds, "eval")])
    store.log_inputs(r2, [DatasetInput(ds, "train")])
    assert store.get_run(r1).inputs == (DatasetInput(ds, "eval"),)
    assert store.get_run(r2).inputs[0].context == "train"


def test_logged_model_lifecycle_and_lease(store):
    rid = store.create_run().info.run_id
    lm = store.create_logged_model("0", "assistant", source_run_id=rid, params={"k": 1}, tags={"t": "v"})
    assert lm.status == "PENDING" and lm.model_id.startswith("m-") and lm.params == {"k": "1"}
    assert store.find_logged_model(rid, "assistant") is None  # not READY yet
    store.finalize_logged_model(lm.model_id, "READY", flavors=["python_function"])
    assert store.find_logged_model(rid, "assistant").flavors == ("python_function",)
    with pytest.raises(InvalidArgumentError, match="only a PENDING"):
        store.finalize_logged_model(lm.model_id, "READY")
    dead = store.create_logged_model("0", "crashed", lease_seconds=-1)  # its writer "died" already
    store.create_logged_model("0", "next")  # the next creation expires old leases
    assert store.get_logged_model(dead.model_id).status == "FAILED"
    store.log_logged_model_metrics(lm.model_id, [Metric("acc", 0.9, 1, 0)], rid)
    assert store.get_logged_model(lm.model_id).metrics == {"acc": 0.9}
    with pytest.raises(NotFoundError):
        store.get_logged_model("m-" + "0" * 32)
