"""Scale-out engines (Ray, Spark) in local mode: the same output as the local engine, and spark_udf."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import hangar.batch as hb
import hangar.pyfunc as hp
from hangar.errors import BatchJobError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROWS = 3000
BAD = {5, 2222}

MODEL_CODE = textwrap.dedent('''
    import os

    import hangar.pyfunc as hp
    from hangar.models import set_model


    class Length(hp.PythonModel):
        """len(text) * scale; raises on 'bad'; records the loads in HANGAR_TEST_LOADS (one file per load)."""

        def load_context(self, context):
            folder = os.environ.get("HANGAR_TEST_LOADS")
            if folder:
                open(os.path.join(folder, f"load-{os.getpid()}-{id(self)}"), "w").close()

        def predict(self, context, model_input, params=None):
            texts = model_input["text"].tolist()
            if "bad" in texts:
                raise ValueError("bad row")
            return [len(t) * (params or {}).get("scale", 1) for t in texts]


    set_model(Length())
''')


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from hangar.models import infer_signature

    d = tmp_path_factory.mktemp("engines-model")
    (d / "length_model.py").write_text(MODEL_CODE)
    sig = infer_signature({"id": [1], "text": ["hi"]}, params={"scale": 1})
    return hp.save_model(d / "pkg", python_model=str(d / "length_model.py"), signature=sig,
                         input_example={"id": [1], "text": ["hi"]})


def _texts(n: int, bad: set[int]) -> pa.Table:
    return pa.table({"id": pa.array(range(n), pa.int64()),
                     "text": ["bad" if i in bad else "x" * (i % 11) for i in range(n)]})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("engines-data") / "in.parquet"
    pq.write_table(_texts(ROWS, BAD), path, row_group_size=700)
    return path


def _sorted(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table, [("id", "ascending")]))


@pytest.fixture(scope="module")
def expected(model, data, tmp_path_factory) -> pa.Table:
    out = tmp_path_factory.mktemp("engines-local") / "out"
    result = hb.run(model, data, out, engine="local", workers=1, params={"scale": 2}, record=False)
    assert (result.rows, result.failed) == (ROWS, len(BAD))
    return _sorted(pq.read_table(out))


@pytest.fixture(scope="module")
def loads(tmp_path_factory):
    """A folder where every model load leaves a file; set before Ray and Spark start their workers."""
    folder = tmp_path_factory.mktemp("engines-loads")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HANGAR_TEST_LOADS", str(folder))
        yield folder


@pytest.fixture(scope="module")
def ray_session(loads):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def spark(loads):
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    from hangar.batch.engines.spark import local_session

    session, started = local_session(2)
    yield session
    if started:
        session.stop()


@pytest.fixture(params=["ray", "spark"])
def engine(request) -> str:
    request.getfixturevalue({"ray": "ray_session", "spark": "spark"}[request.param])
    return request.param


def test_engine_output_is_the_local_engines(engine, model, data, expected, loads, tmp_path):
    for f in loads.iterdir():
        f.unlink()
    result = hb.run(model, data, tmp_path / "out", engine=engine, workers=2, chunk_rows=250, params={"scale": 2})
    assert (result.rows, result.failed, result.chunks) == (ROWS, len(BAD), 12)
    assert "bad row" in result.first_error
    out = _sorted(pq.read_table(tmp_path / "out"))
    assert out.schema == expected.schema
    assert out.equals(expected), "same rows, predictions, model_version and errors as engine='local'"
    failed = out.filter(pc.is_valid(out.column("error")))
    assert failed.column("id").to_pylist() == sorted(BAD)
    assert all("ValueError: bad row" in e for e in failed.column("error").to_pylist())
    # each actor / Python worker loads the model once for the whole job, not once per chunk or window
    assert 1 <= len(list(loads.iterdir())) <= 2

    again = hb.run(model, data, tmp_path / "out", engine=engine, workers=2, chunk_rows=250, params={"scale": 2})
    assert (again.rows, again.resumed_chunks) == (ROWS, 12), "a finished job is not scored again"


def test_engine_raises_the_cores_errors(engine, model, tmp_path):
    pq.write_table(_texts(400, {321}), tmp_path / "in.parquet")
    with pytest.raises(BatchJobError, match="row 121 .*bad row"):
        hb.run(model, tmp_path / "in.parquet", tmp_path / "out", engine=engine, workers=2, chunk_rows=200,
               fail_fast=True, record=False)
    with pytest.raises(BatchJobError, match="no column 'nope'"):
        hb.run(model, tmp_path / "in.parquet", tmp_path / "out2", engine=engine, workers=2, columns=["nope"],
               record=False)


def test_spark_udf_in_a_users_own_job(spark, model):
    from pyspark.sql import functions as F

    df = spark.createDataFrame(_texts(500, {17}).to_pandas()).repartition(3)
    udf = hb.spark_udf(spark, str(model), params={"scale": 3})
    rows = df.withColumn("out", udf("id", "text")).select("id", "out.prediction", "out.error").collect()
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == 500
    assert by_id[17]["prediction"] is None and "ValueError: bad row" in by_id[17]["error"]
    assert all(by_id[i]["prediction"] == str((i % 11) * 3) and by_id[i]["error"] is None for i in by_id if i != 17)

    typed = hb.spark_udf(spark, str(model), columns=["id", "text"], result_type="long")
    total = df.withColumn("prediction", typed(F.col("id"), F.col("text"))).agg(F.sum("prediction"), F.count("prediction"))
    assert tuple(total.first()) == (sum(i % 11 for i in range(500) if i != 17), 499)
