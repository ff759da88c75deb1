"""Eight processes writing to one run at once: nothing lost, on SQLite and PostgreSQL."""

import multiprocessing as mp

import pytest

from hangar.tracking.sql_store import SqlTrackingStore

PROCESSES = 8
PER_PROCESS = 60


def _writer(uri, artifacts, run_id, worker, start_evt):
    store = SqlTrackingStore(uri, artifacts)
    start_evt.wait(30)
    for i in range(PER_PROCESS):
        store.log_metric(run_id, "loss", float(i), timestamp=i, step=worker * 1000 + i)
        if i % 20 == 0:
            store.log_param(run_id, f"w{worker}.p{i}", i)
            store.set_tag(run_id, "last_writer", str(worker))
    store.close()


@pytest.mark.slow
def test_eight_processes_log_to_the_same_run(store_uri, tmp_path):
    store = SqlTrackingStore(store_uri, str(tmp_path / "art"))
    run_id = store.create_run().info.run_id
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(store_uri, str(tmp_path / "art"), run_id, w, start))
             for w in range(PROCESSES)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    history = store.get_metric_history(run_id, "loss")
    assert len(history) == PROCESSES * PER_PROCESS
    assert sorted(m.step for m in history) == sorted(w * 1000 + i for w in range(PROCESSES) for i in range(PER_PROCESS))
    run = store.get_run(run_id)
    assert len(run.data.params) == PROCESSES * 3
    assert run.data.metrics["loss"] == float(PER_PROCESS - 1)  # the highest step's value
    store.close()


def _set_experiment_and_log(uri, home, start_evt):
    import os

    os.environ["HANGAR_HOME"] = home
    from hangar.tracking import fluent

    fluent.set_tracking_uri(uri)
    start_evt.wait(30)
    fluent.set_experiment("shared")
    with fluent.start_run():
        fluent.log_metric("m", 1.0)


@pytest.mark.slow
def test_eight_processes_create_the_same_experiment(store_uri, tmp_path):
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_set_experiment_and_log, args=(store_uri, str(tmp_path / "home"), start))
             for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    store = SqlTrackingStore(store_uri, str(tmp_path / "art"))
    exp = store.get_experiment_by_name("shared")
    runs, _ = store.search_runs([exp.experiment_id])
    assert len(runs) == PROCESSES
    store.close()
