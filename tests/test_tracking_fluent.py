"""The fluent API: active experiment and runs in context variables, as MLflow users expect."""

import threading

import pandas as pd
import pytest

from hangar.errors import InvalidArgumentError
from hangar.tracking import fluent as ht


@pytest.fixture(autouse=True)
def fresh_store(tmp_path, monkeypatch):
    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    ht.set_tracking_uri(None)
    yield
    while ht.active_run():
        ht.end_run()
    ht.set_tracking_uri(None)


def test_start_run_works_with_no_setup():
    with ht.start_run() as run:
        ht.log_param("lr", 0.01)
        ht.log_metric("acc", 0.5, step=1)
        ht.log_metrics({"acc": 0.8, "loss": 0.2}, step=2)
        ht.set_tags({"team": "x"})
    got = ht.client().get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.info.experiment_id == "0"
    assert got.data.params == {"lr": "0.01"} and got.data.metrics == {"acc": 0.8, "loss": 0.2}
    assert [m.value for m in ht.client().get_metric_history(run.info.run_id, "acc")] == [0.5, 0.8]


def test_logging_without_a_run_starts_one():
    ht.log_metric("m", 1.0)
    run = ht.active_run()
    assert run is not None
    ht.end_run()
    assert ht.client().get_run(run.info.run_id).info.status == "FINISHED"


def test_nested_runs_and_failure_status():
    with ht.start_run() as parent:
        with pytest.raises(InvalidArgumentError, match="nested=True"):
            ht.start_run()
        with ht.start_run(nested=True) as child:
            assert ht.active_run().info.run_id == child.info.run_id
        assert ht.active_run().info.run_id == parent.info.run_id
        with pytest.raises(RuntimeError):
            with ht.start_run(nested=True) as failing:
                raise RuntimeError("boom")
    c = ht.client()
    assert c.get_run(child.info.run_id).info.parent_run_id == parent.info.run_id
    assert c.get_run(failing.info.run_id).info.status == "FAILED"
    assert c.get_run(parent.info.run_id).info.status == "FINISHED"


def test_set_experiment_creates_and_search_defaults_to_it():
    exp = ht.set_experiment("churn")
    for lr in (0.1, 0.01, 0.001):
        with ht.start_run():
            ht.log_param("lr", lr)
            ht.log_metric("acc", 1 - lr)
            ht.set_tag("team", "x")
    df = ht.search_runs(filter_string="metrics.acc > 0.95 and tags.team = 'x'", order_by=["metrics.acc DESC"])
    assert isinstance(df, pd.DataFrame)
    assert df["params.lr"].tolist() == ["0.001", "0.01"]
    assert (df["experiment_id"] == exp.experiment_id).all()
    runs = ht.search_runs(filter_string="params.lr = '0.1'", output_format="list")
    assert len(runs) == 1 and runs[0].data.metrics["acc"] == pytest.approx(0.9)
    with pytest.raises(InvalidArgumentError, match="Invalid filter"):
        ht.search_runs(filter_string="metrics.acc >> 1")


def test_log_input_records_a_dataset():
    df = pd.DataFrame({"question": ["a", "b", "c"]})
    with ht.start_run() as run:
        ds = ht.log_input(df, context="eval", name="demo-questions")
    got = ht.client().get_run(run.info.run_id).inputs
    assert got[0].dataset.name == "demo-questions" and got[0].dataset.digest == ds.digest
    assert '"num_rows": 3' in got[0].dataset.profile and got[0].context == "eval"


def test_artifacts_text_dict_and_files(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    with ht.start_run() as run:
        ht.log_text("some text", "texts/a.txt")
        ht.log_dict({"k": 1}, "config.json")
        ht.log_artifact(f, "files")
    c = ht.client()
    names = sorted(i.path for i in c.list_artifacts(run.info.run_id))
    assert names == ["config.json", "files", "texts"]
    out = c.download_artifacts(run.info.run_id, "texts/a.txt", tmp_path / "dl")
    assert out.read_text() == "some text"


def test_context_is_per_thread():
    seen = {}

    def worker():
        seen["run"] = ht.active_run()

    with ht.start_run():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert seen["run"] is None
