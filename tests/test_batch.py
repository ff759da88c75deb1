"""Batch inference: sources, sinks, per-row errors, resume after SIGKILL, recording, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hangar.batch as hb
import hangar.pyfunc as hp
from hangar.errors import BatchJobError

pytestmark = pytest.mark.timeout(180)

MODEL_CODE = textwrap.dedent('''
    import os
    import signal
    import time

    import hangar.pyfunc as hp
    from hangar.models import set_model


    class Length(hp.PythonModel):
        """len(text); raises on 'bad'; SIGKILLs its own process once when asked to (crash tests)."""

        def predict(self, context, model_input, params=None):
            texts = model_input["text"].tolist()
            marker = os.environ.get("HANGAR_TEST_CRASH_MARKER")
            if marker and os.path.exists(marker) and int(os.environ["HANGAR_TEST_CRASH_AT"]) in model_input["id"].tolist():
                os.unlink(marker)
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(float(os.environ.get("HANGAR_TEST_DELAY", "0")))
            if "bad" in texts:
                raise ValueError("bad row")
            scale = (params or {}).get("scale", 1)
            return [len(t) * scale for t in texts]


    set_model(Length())
''')


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from hangar.models import infer_signature

    d = tmp_path_factory.mktemp("batch-model")
    code = d / "length_model.py"
    code.write_text(MODEL_CODE)
    sig = infer_signature({"id": [1], "text": ["hi"]}, params={"scale": 1})
    return hp.save_model(d / "pkg", python_model=str(code), signature=sig, input_example={"id": [1], "text": ["hi"]})


def _texts(n: int, bad: set[int] = frozenset()) -> pa.Table:
    return pa.table({"id": pa.array(range(n), pa.int64()),
                     "text": ["bad" if i in bad else "x" * (i % 11) for i in range(n)]})


def _check_output(table: pa.Table, n: int, bad: set[int] = frozenset(), scale: int = 1) -> None:
    rows = sorted(table.to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(n)), "every input row exactly once"
    for r in rows:
        if r["id"] in bad:
            assert r["prediction"] is None and "bad row" in r["error"]
        else:
            assert r["prediction"] == (r["id"] % 11) * scale and r["error"] is None


def test_parquet_to_parquet_with_errors_params_and_recording(model, tmp_path):
    pq.write_table(_texts(2500, {7, 1999}), tmp_path / "in.parquet", row_group_size=700)
    result = hb.run(model, tmp_path / "in.parquet", tmp_path / "out", workers=1, chunk_rows=600, params={"scale": 3})
    assert (result.rows, result.failed, result.chunks, result.resumed_chunks) == (2500, 2, 5, 0)
    out = pq.read_table(tmp_path / "out")
    assert out.column_names == ["id", "text", "prediction", "model_version", "error"]
    _check_output(out, 2500, {7, 1999}, scale=3)
    assert set(out.column("model_version").to_pylist()) == {str(Path(model).resolve())}
    assert sorted(p.name for p in (tmp_path / "out").iterdir())[:2] == ["_hangar_batch.json", "part-00000000.parquet"]

    import hangar

    run = hangar.Client().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["rows"] == 2500 and run.data.metrics["failed_rows"] == 2
    assert run.data.params["input"] == str((tmp_path / "in.parquet").resolve())


def test_rerun_of_a_finished_job_scores_nothing_again(model, tmp_path):
    pq.write_table(_texts(300), tmp_path / "in.parquet")
    first = hb.run(model, tmp_path / "in.parquet", tmp_path / "out", workers=1, chunk_rows=100)
    again = hb.run(model, tmp_path / "in.parquet", tmp_path / "out", workers=1, chunk_rows=100)
    assert (again.rows, again.resumed_chunks, again.run_id) == (300, 3, first.run_id)
    _check_output(pq.read_table(tmp_path / "out"), 300)


def test_columns_and_keep_columns(model, tmp_path):
    t = _texts(50).append_column("extra", pa.array(["e"] * 50))
    pq.write_table(t, tmp_path / "in.parquet")
    hb.run(model, tmp_path / "in.parquet", tmp_path / "out", workers=1, columns=["id", "text"], keep_columns=["id"],
           output_column="length", record=False)
    out = pq.read_table(tmp_path / "out")
    assert out.column_names == ["id", "length", "model_version", "error"]
    assert out.column("length").to_pylist()[:3] == [0, 1, 2]


def test_fail_fast_stops_at_the_first_bad_row(model, tmp_path):
    pq.write_table(_texts(100, {42}), tmp_path / "in.parquet")
    with pytest.raises(BatchJobError, match="row 42 .*bad row"):
        hb.run(model, tmp_path / "in.parquet", tmp_path / "out", workers=1, chunk_rows=1000, fail_fast=True, record=False)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_csv_and_jsonl_inputs_folder_and_glob(model, tmp_path, suffix):
    import pyarrow.csv as pcsv

    folder = tmp_path / "in"
    folder.mkdir()
    for part in range(3):
        t = _texts(300).slice(part * 100, 100)
        path = folder / f"part-{part}{suffix}"
        if suffix == ".csv":
            pcsv.write_csv(t, path)
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in t.to_pylist()))
    (folder / "_SUCCESS").write_text("")  # hidden files are skipped
    folder_job = hb.run(model, folder, tmp_path / "out1", workers=1, chunk_rows=128, record=False)
    assert (folder_job.rows, folder_job.chunks) == (300, 3)
    _check_output(pq.read_table(tmp_path / "out1"), 300)
    glob_job = hb.run(model, str(folder / f"*{suffix}"), tmp_path / "out2.jsonl", workers=1, chunk_rows=128, record=False)
    assert glob_job.rows == 300
    rows = [json.loads(line) for line in (tmp_path / "out2.jsonl").read_text().splitlines()]
    _check_output(pa.Table.from_pylist(rows), 300)


def test_two_workers_match_one(model, tmp_path):
    pq.write_table(_texts(3000, {5, 2222}), tmp_path / "in.parquet")
    one = hb.run(model, tmp_path / "in.parquet", tmp_path / "one", workers=1, chunk_rows=400, record=False)
    two = hb.run(model, tmp_path / "in.parquet", tmp_path / "two", workers=2, chunk_rows=400, record=False)
    assert (one.rows, one.failed) == (two.rows, two.failed) == (3000, 2)
    a = pq.read_table(tmp_path / "one").sort_by("id")
    b = pq.read_table(tmp_path / "two").sort_by("id")
    assert a.equals(b)


def test_output_of_another_job_is_refused_unless_overwrite(model, tmp_path):
    pq.write_table(_texts(100), tmp_path / "a.parquet")
    pq.write_table(_texts(50), tmp_path / "b.parquet")
    hb.run(model, tmp_path / "a.parquet", tmp_path / "out", workers=1, record=False)
    with pytest.raises(BatchJobError, match="another batch job"):
        hb.run(model, tmp_path / "b.parquet", tmp_path / "out", workers=1, record=False)
    assert pq.read_table(tmp_path / "out").num_rows == 100, "the earlier output is untouched"
    hb.run(model, tmp_path / "b.parquet", tmp_path / "out", workers=1, overwrite=True, record=False)
    assert pq.read_table(tmp_path / "out").num_rows == 50
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(BatchJobError, match="not a batch job"):
        hb.run(model, tmp_path / "a.parquet", tmp_path / "mine", workers=1, record=False)
    with pytest.raises(BatchJobError, match="refusing to delete"):
        hb.run(model, tmp_path / "a.parquet", tmp_path / "mine", workers=1, overwrite=True, record=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("bad", [
    dict(input="missing.parquet", match="No input files"),
    dict(columns=["nope"], match="no column 'nope'"),
    dict(engine="dask", match="Unknown engine"),
    dict(workers=0, match="at least 1"),
    dict(output_column="id", match="already has a column 'id'"),
    dict(input_format="xml", match="Unknown input format"),
])
def test_bad_arguments_are_clear_errors(model, tmp_path, bad):
    pq.write_table(_texts(10), tmp_path / "in.parquet")
    match = bad.pop("match")
    source = tmp_path / bad.pop("input", "in.parquet")
    with pytest.raises(BatchJobError, match=match):
        hb.run(model, source, tmp_path / "out", record=False, **{"workers": 1, **bad})


def test_registered_alias_is_pinned_and_lineage_recorded(model, tmp_path):
    import hangar

    client = hangar.Client()
    mv = hangar.register_model(str(model), "main.default.batch_len")
    client.set_alias("main.default.batch_len", "champion", mv.version)
    pq.write_table(_texts(200), tmp_path / "in.parquet")
    result = hb.run("models:/main.default.batch_len@champion", tmp_path / "in.parquet", tmp_path / "out", workers=1)
    label = f"main.default.batch_len/{mv.version}"
    assert result.model_version == label
    assert set(pq.read_table(tmp_path / "out").column("model_version").to_pylist()) == {label}
    graph = client.get_lineage(f"models:/{label}", direction="downstream")
    keys = {n.key for n in graph.nodes}
    assert f"batch_job:{result.run_id}" in keys
    assert f"table:{(tmp_path / 'out').resolve()}" in keys
    up = client.get_lineage("batch_job", entity_id=result.run_id, direction="upstream")
    assert f"table:{(tmp_path / 'in.parquet').resolve()}" in {n.key for n in up.nodes}


def _run_cli(args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "hangar.cli.main", "batch", *map(str, args)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120, **kw)


def test_cli_summary_and_errors(model, tmp_path):
    pq.write_table(_texts(120, {3}), tmp_path / "in.parquet")
    done = _run_cli([model, "--input", tmp_path / "in.parquet", "--output", tmp_path / "out", "--workers", "1"])
    assert done.returncode == 0, done.stderr
    assert "rows" in done.stdout and "120" in done.stdout and "first error" in done.stdout
    assert "scoring with" not in done.stderr, "no progress bar when stderr is not a terminal"
    bad = _run_cli([model, "--input", tmp_path / "nope.csv", "--output", tmp_path / "out2"])
    assert bad.returncode == 1 and "No input files" in bad.stderr and "Traceback" not in bad.stderr
    bad = _run_cli([model, "--input", tmp_path / "in.parquet", "--output", tmp_path / "o3", "--params", "{oops"])
    assert bad.returncode == 1 and "--params is not valid JSON" in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("output", ["out", "out.jsonl"])
def test_sigkill_mid_job_then_resume_gives_every_row_once(model, tmp_path, output):
    """An external SIGKILL of the whole job at an arbitrary moment, then the same command again."""
    n = 3000
    pq.write_table(_texts(n, {1234}), tmp_path / "in.parquet")
    args = [model, "--input", tmp_path / "in.parquet", "--output", tmp_path / output, "--workers", "1",
            "--chunk-rows", "100"]
    env = {"HANGAR_TEST_DELAY": "0.05"}
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "batch", *map(str, args)],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    out = tmp_path / output
    checkpoint = out.with_name(out.name + ".hangar-batch.json")

    def committed() -> int:
        if output.endswith(".jsonl"):
            try:
                return json.loads(checkpoint.read_text()).get("next_chunk", 0)
            except (OSError, ValueError):
                return 0
        return len(list(out.glob("part-*.parquet"))) if out.is_dir() else 0

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and committed() < 5:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = _run_cli(args, env=env)
    assert done.returncode == 0, done.stderr
    assert "already done" in done.stdout
    if output.endswith(".jsonl"):
        table = pa.Table.from_pylist([json.loads(x) for x in (tmp_path / output).read_text().splitlines()])
    else:
        table = pq.read_table(tmp_path / output)
    _check_output(table, n, {1234})


@pytest.mark.slow
@pytest.mark.parametrize("sink", ["parquet", "jsonl", "sql", "delta"])
def test_crash_inside_the_model_then_resume(model, tmp_path, sink, pg_uri):
    """The job's process is SIGKILLed at a known row (the model kills it), for every sink."""
    n = 1000
    pq.write_table(_texts(n, {10}), tmp_path / "in.parquet")
    out = {"parquet": str(tmp_path / "out"), "jsonl": str(tmp_path / "out.jsonl"),
           "sql": f"{pg_uri}#predictions", "delta": f"delta:{tmp_path / 'delta_out'}"}[sink]
    marker = tmp_path / "crash-once"
    marker.write_text("")
    env = {"HANGAR_TEST_CRASH_MARKER": str(marker), "HANGAR_TEST_CRASH_AT": "555"}
    args = [model, "--input", tmp_path / "in.parquet", "--output", out, "--workers", "1", "--chunk-rows", "100"]
    crashed = _run_cli(args, env=env)
    assert crashed.returncode == -signal.SIGKILL and not marker.exists()
    done = _run_cli(args, env=env)
    assert done.returncode == 0, done.stderr
    assert "5 of 10 chunks were already done" in done.stdout
    if sink == "parquet":
        table = pq.read_table(out)
    elif sink == "jsonl":
        table = pa.Table.from_pylist([json.loads(x) for x in Path(out).read_text().splitlines()])
    elif sink == "sql":
        import sqlalchemy as sa

        engine = sa.create_engine(pg_uri)
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM predictions"))]
        engine.dispose()
        table = pa.Table.from_pylist(rows)
    else:
        import deltalake

        table = deltalake.DeltaTable(str(tmp_path / "delta_out")).to_pyarrow_table()
    _check_output(table, n, {10})


def test_postgresql_query_source(model, tmp_path, pg_uri):
    import sqlalchemy as sa

    engine = sa.create_engine(pg_uri)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE tickets (id bigint primary key, text text)"))
        conn.execute(sa.text("INSERT INTO tickets VALUES (:id, :text)"), _texts(777, {100}).to_pylist())
    engine.dispose()
    result = hb.run(model, pg_uri, tmp_path / "out.jsonl", query="SELECT id, text FROM tickets ORDER BY id",
                    workers=1, chunk_rows=200)
    assert (result.rows, result.failed) == (777, 1)
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(777))
    _check_output(pa.Table.from_pylist(rows), 777, {100})
    import hangar

    assert hangar.Client().get_run(result.run_id).data.params["input"].startswith("postgresql://")


def test_sql_url_password_is_never_recorded(model, tmp_path):
    from hangar.batch.sources import open_source, redact_url

    assert "s3cret" not in redact_url("postgresql://u:s3cret@127.0.0.1/test")
    src = open_source("postgresql://u:s3cret@127.0.0.1/test", query="SELECT 1")
    assert "s3cret" not in src.lineage_id and "s3cret" not in json.dumps(src.fingerprint())


def test_delta_source(model, tmp_path):
    deltalake = pytest.importorskip("deltalake")
    deltalake.write_deltalake(str(tmp_path / "d"), _texts(400, {9}))
    result = hb.run(model, tmp_path / "d", tmp_path / "out", workers=1, chunk_rows=150, record=False)
    assert (result.rows, result.failed) == (400, 1)
    _check_output(pq.read_table(tmp_path / "out"), 400, {9})


def test_chat_model_over_an_openai_endpoint_bounded_retried_and_counted(tmp_path, monkeypatch):
    """Rows become chat payloads; at most `concurrency` requests in flight; 429s are retried
    (honouring Retry-After); usage is summed into the job's token count."""
    pytest.importorskip("openai")
    import hangar.openai
    from hangar.testing.openai_server import run_openai_server

    with run_openai_server(api_key="k", fail_statuses=(429, 429, 500), response_delay=0.02) as srv:
        monkeypatch.setenv("BATCH_TEST_KEY", "k")
        pkg = hangar.openai.save_model(tmp_path / "chat", "gpt-test", "llm/v1/chat", base_url=srv.base_url,
                                       api_key_env="BATCH_TEST_KEY")
        prompts = pa.table({"id": list(range(40)), "question": [f"question number {i}" for i in range(40)]})
        pq.write_table(prompts, tmp_path / "prompts.parquet")
        result = hb.run(pkg, tmp_path / "prompts.parquet", tmp_path / "answers", columns=["question"], workers=1,
                        concurrency=4)
        statuses = [r.status for r in srv.requests]
        assert 1 < srv.server.max_in_flight <= 4
    assert (result.rows, result.failed) == (40, 0)
    assert statuses.count(429) == 2 and statuses.count(500) == 1 and statuses.count(200) == 40
    out = pq.read_table(tmp_path / "answers").sort_by("id").to_pylist()
    assert out[3]["prediction"] == "echo: question number 3"
    assert result.prompt_tokens == sum(3 for _ in range(40)) and result.completion_tokens == 4 * 40


@pytest.mark.slow
def test_memory_stays_flat_on_a_large_input(tmp_path):
    """RSS of the whole process tree, sampled while 8M rows are scored: reading the input whole
    would take more than the bound on its own (≈ 0.5 GB as pandas); streaming stays well under."""
    import numpy as np
    import psutil

    n, step = 8_000_000, 1_000_000
    writer = None
    for start in range(0, n, step):
        ids = np.arange(start, start + step)
        t = pa.table({"id": ids, "text": pa.array((ids % 97).astype(str))})
        writer = writer or pq.ParquetWriter(tmp_path / "big.parquet", t.schema)
        writer.write_table(t, row_group_size=200_000)
    writer.close()
    code = tmp_path / "len_model.py"
    code.write_text("import hangar.pyfunc as hp\nfrom hangar.models import set_model\n\n\n"
                    "class Len(hp.PythonModel):\n    def predict(self, context, model_input, params=None):\n"
                    "        return model_input['text'].str.len()\n\n\nset_model(Len())\n")
    pkg = hp.save_model(tmp_path / "len", python_model=str(code), input_example={"id": [1], "text": ["a"]})
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "batch", str(pkg), "--input",
                             str(tmp_path / "big.parquet"), "--output", str(tmp_path / "out"), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert pq.ParquetFile(next((tmp_path / "out").glob("part-*.parquet"))).metadata.num_rows > 0
    assert pq.read_metadata(tmp_path / "big.parquet").num_rows == n
    assert sum(pq.read_metadata(p).num_rows for p in (tmp_path / "out").glob("part-*.parquet")) == n
    assert peak < 400 * 2**20, f"peak RSS of the job's process tree was {peak / 2**20:.0f} MiB"


def test_progress_bar_on_a_terminal(model, tmp_path):
    import pty

    pq.write_table(_texts(500), tmp_path / "in.parquet")
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "batch", str(model), "--input",
                             str(tmp_path / "in.parquet"), "--output", str(tmp_path / "out"), "--workers", "1",
                             "--chunk-rows", "100"], stdout=subprocess.DEVNULL, stderr=follower,
                            env={**os.environ, "COLUMNS": "160", "TERM": "xterm"})
    os.close(follower)
    seen = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        seen += data
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    text = seen.decode(errors="replace")
    assert "scoring with" in text and "500/500" in text and "rows/s" in text and "0 failed" in text


def test_a_torn_part_file_is_scored_again(model, tmp_path):
    """What a machine crash can leave (a renamed part whose data never reached the disk)."""
    pq.write_table(_texts(500), tmp_path / "in.parquet")
    hb.run(model, tmp_path / "in.parquet", tmp_path / "out", workers=1, chunk_rows=100, record=False)
    part = tmp_path / "out" / "part-00000002.parquet"
    part.write_bytes(part.read_bytes()[:50])
    again = hb.run(model, tmp_path / "in.parquet", tmp_path / "out", workers=1, chunk_rows=100, record=False)
    assert (again.rows, again.resumed_chunks) == (500, 4)
    _check_output(pq.read_table(tmp_path / "out"), 500)
