"""The inference table's Parquet writer process: exact counts, bodies of every kind, a writer that
dies (its rows counted as lost, the next batch written by a new one), signals that must not stop
it early, and a server that goes away without a last flush."""

from __future__ import annotations

import json
import os
import signal
import time

import pyarrow.parquet as pq
import pytest

from hangar.monitoring.inference_table import InferenceTable, ParquetTarget
from hangar.monitoring.parquet_writer import ParquetProcessTarget, RowsLost


def _rows(tmp_path, folder="inf"):
    path = tmp_path / folder
    return pq.read_table(path).to_pylist() if any(path.glob("*.parquet")) else []


def _record(table, i, **extra):
    table.record(**{"request_id": f"r{i}", "endpoint": "support", "served_entity": "champion", "model_version": "m/1",
                    "latency_ms": 1.5, "status_code": 200, "request": b'{"inputs": [1]}',
                    "response": b'{"predictions": [1]}', **extra})


def test_rows_of_every_kind_reach_parquet_through_the_writer_process(tmp_path):
    table = InferenceTable(ParquetProcessTarget(str(tmp_path / "inf")), flush_rows=250, flush_seconds=60)
    for i in range(997):
        _record(table, i, prompt_tokens=i)
    _record(table, "dict", request={"inputs": ["é"]}, response=None)        # a JSON-able value, not bytes
    _record(table, "latin", request=b"caf\xe9", response="text already")     # invalid UTF-8 bytes, a str
    _record(table, "cancelled", status_code=499, cancelled=True, error_code="CANCELLED")
    table.close()
    rows = {r["request_id"]: r for r in _rows(tmp_path)}
    assert len(rows) == 1000 and table.written == 1000 and table.failed_writes == 0 and table.dropped == 0
    assert rows["r7"]["prompt_tokens"] == 7 and rows["r7"]["response"] == '{"predictions": [1]}'
    assert json.loads(rows["rdict"]["request"]) == {"inputs": ["é"]} and rows["rdict"]["response"] is None
    assert rows["rlatin"]["request"] == "caf\ufffd" and rows["rlatin"]["response"] == "text already"
    assert rows["rcancelled"]["cancelled"] is True and rows["rcancelled"]["status_code"] == 499
    assert table.target._proc is None, "closing stops the writer process"


def test_a_writer_that_dies_costs_only_its_rows_and_the_next_batch_gets_a_new_one(tmp_path):
    target = ParquetProcessTarget(str(tmp_path / "inf"))
    target.stage([("a", *([None] * 14))])
    assert target.flush() == 1
    first = target._proc
    target.stage([("b", *([None] * 14)), ("c", *([None] * 14))])
    first.kill()
    first.wait()
    with pytest.raises(RowsLost) as lost:
        target.flush()
    assert lost.value.lost_rows == 2
    target.stage([("d", *([None] * 14))])  # a new writer, with new file names
    assert target.flush() == 1 and target._proc is not first
    target.close()
    assert sorted(r["request_id"] for r in _rows(tmp_path)) == ["a", "d"]
    assert len(list((tmp_path / "inf").glob("*.parquet"))) == 2


def test_the_table_counts_a_dead_writers_rows_as_failed(tmp_path):
    table = InferenceTable(ParquetProcessTarget(str(tmp_path / "inf")), flush_rows=10_000, flush_seconds=60)
    for i in range(50):
        _record(table, i)
    deadline = time.monotonic() + 10
    while table.target.staged < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    table.target._proc.kill()
    table.target._proc.wait()
    for i in range(50, 60):
        _record(table, i)
    table.close()
    assert table.failed_writes >= 50 and table.written + table.failed_writes == 60
    assert len(_rows(tmp_path)) == table.written


def test_signals_to_the_group_do_not_stop_the_writer_before_the_server_drains(tmp_path):
    target = ParquetProcessTarget(str(tmp_path / "inf"))
    target.stage([("a", *([None] * 14))])
    proc = target._proc
    time.sleep(0.5)  # let the child install its handlers
    for sig in (signal.SIGINT, signal.SIGTERM):
        os.kill(proc.pid, sig)
    time.sleep(0.2)
    assert proc.poll() is None
    assert target.flush() == 1
    target.close()
    assert proc.returncode == 0


def test_a_server_gone_without_a_last_flush_leaves_its_rows_written(tmp_path):
    target = ParquetProcessTarget(str(tmp_path / "inf"))
    target.stage([(f"r{i}", *([None] * 14)) for i in range(3)])
    proc = target._proc
    proc.stdin.close()  # what the child sees when the serving process is killed outright
    assert proc.wait(30) == 0
    assert sorted(r["request_id"] for r in _rows(tmp_path)) == ["r0", "r1", "r2"]


def test_the_in_process_target_takes_the_same_rows(tmp_path):
    target = ParquetTarget(str(tmp_path / "inf"), prefix="part-test")
    target.stage([("a", *([None] * 12), b"\xff\xfe", {"k": 1})])
    assert target.flush() == 1
    (row,) = _rows(tmp_path)
    assert row["request"] == "\ufffd\ufffd" and json.loads(row["response"]) == {"k": 1}
    assert [p.name.startswith("part-test-") for p in (tmp_path / "inf").iterdir()] == [True]


def test_a_busy_table_writes_row_groups_into_one_file_per_flush_interval(tmp_path):
    table = InferenceTable(ParquetProcessTarget(str(tmp_path / "inf")), flush_rows=100, flush_seconds=60)
    target = table.target
    for i in range(1000):
        _record(table, i)
        if i % 100 == 99:  # each hundred staged (after _STAGE_WAIT_S) and made a row group before the next
            deadline = time.monotonic() + 10
            while (target.staged, target.ungrouped) != (i + 1, 0) and time.monotonic() < deadline:
                time.sleep(0.005)
    deadline = time.monotonic() + 10
    while not list((tmp_path / "inf").glob(".*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.01)  # the row groups go into an open, hidden file...
    assert not list((tmp_path / "inf").glob("*.parquet")), "...and nothing is published before the interval"
    table.close()
    (path,) = (tmp_path / "inf").glob("*.parquet")
    assert pq.ParquetFile(path).metadata.num_row_groups == 10 and pq.ParquetFile(path).metadata.num_rows == 1000
    assert table.written == 1000 and table.failed_writes == 0 and not list((tmp_path / "inf").glob(".*"))


def test_the_interval_publishes_what_is_open_and_a_dead_writer_loses_only_its_unpublished_rows(tmp_path):
    table = InferenceTable(ParquetProcessTarget(str(tmp_path / "inf")), flush_rows=10, flush_seconds=0.3)
    for i in range(30):
        _record(table, i)
    deadline = time.monotonic() + 10
    while table.written < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert table.written == 30 and len(_rows(tmp_path)) == 30
    table.flush_seconds = 60  # the next rows go into row groups of a file that is never published...
    time.sleep(0.35)
    for i in range(30, 60):
        _record(table, i)
    while table.target.staged < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    while table.target.ungrouped and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the child writes the row group
    table.target._proc.kill()  # ...because its writer dies
    table.target._proc.wait()
    table.close()
    assert table.written == 30 and table.failed_writes == 30 and len(_rows(tmp_path)) == 30


def test_a_failed_row_group_is_reported_at_the_flush_and_the_writer_goes_on(tmp_path, monkeypatch):
    target = ParquetTarget(str(tmp_path / "inf"), prefix="part-test")
    target.stage([("a", *([None] * 14))])
    target.write_group()
    target.stage([("b", *([None] * 14))])
    assert target.staged == 2 and target.ungrouped == 1
    target.discard()  # what the child does when a row group fails
    assert target.staged == 0 and not list((tmp_path / "inf").iterdir()), "the broken file is removed"
    target.stage([("c", *([None] * 14))])
    assert target.flush() == 1 and [r["request_id"] for r in _rows(tmp_path)] == ["c"]


def test_a_trickle_of_rows_is_staged_together_and_a_burst_at_once():
    from hangar.monitoring import inference_table as it

    class Counting:
        staged = ungrouped = 0

        def __init__(self):
            self.batches = []

        def stage(self, rows):
            self.batches.append((time.monotonic(), len(rows)))

        def flush(self):
            return 0

        def close(self):
            pass

    target = Counting()
    table = InferenceTable(target, flush_rows=10_000, flush_seconds=60)
    start = time.monotonic()
    for i in range(5):
        _record(table, i)
    deadline = start + 10
    while not target.batches and time.monotonic() < deadline:
        time.sleep(0.005)
    (when, size), = target.batches
    assert size == 5 and when - start >= it._STAGE_WAIT_S * 0.9, "a few rows wait to be staged together"
    for i in range(it._STAGE_ROWS * 2):
        _record(table, i)
    while sum(n for _, n in target.batches) < 5 + it._STAGE_ROWS * 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    table.close()
    sizes = [n for _, n in target.batches]
    assert sum(sizes) == 5 + it._STAGE_ROWS * 2 and len(sizes) <= 3, f"a burst is staged in big batches: {sizes}"
