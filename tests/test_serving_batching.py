"""Adaptive batching, the lean /invocations path and back-pressure, against real uvicorn servers on
loopback. No timing assertions: slow models only make requests overlap."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from test_serving import running, wait_ready

import hangar.pyfunc as hp
from hangar.errors import ModelExecutionError, SchemaMismatchError
from hangar.models import infer_signature
from hangar.serving import jsonio, rowwise, scoring
from hangar.serving.app import build_app
from hangar.serving.batching import score_batch
from hangar.serving.settings import ServingSettings

pytestmark = pytest.mark.timeout(120)


class Recorder(hp.PythonModel):
    """Upper-cases each text and appends the ``suffix`` param; records the size of every batch it
    gets. ``slow`` makes a call sleep (so others queue behind it), ``boom`` raises."""

    def __init__(self):
        self.sizes = []  # list.append is atomic; the model runs in one thread at a time anyway

    def predict(self, context, model_input, params=None):
        texts = list(model_input["text"])
        self.sizes.append(len(texts))
        if "boom" in texts:
            raise RuntimeError("secret internal detail")
        if "slow" in texts:
            time.sleep(0.4)
        if "short" in texts:
            return texts[:-1]
        return [t.upper() + params["suffix"] for t in texts]


@pytest.fixture(scope="module")
def recorder_pkg(tmp_path_factory):
    sig = infer_signature({"text": ["abc"]}, params={"suffix": ""})
    return hp.save_model(tmp_path_factory.mktemp("batching") / "rec", Recorder(), signature=sig)


def _metric(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] == name and all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no {name} {labels} in the metrics")


def _serve(pkg, **settings):
    model = hp.load_model(pkg)
    return model.unwrap_python_model(), running(build_app(model, model_uri=str(pkg), settings=ServingSettings(**settings)))


def _body(texts, suffix=None, fmt="split"):
    if fmt == "split":
        body = {"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}
    elif fmt == "records":
        body = {"dataframe_records": [{"text": t} for t in texts]}
    else:
        body = {"inputs": {"text": texts}}
    if suffix is not None:
        body["params"] = {"suffix": suffix}
    return body


def _post_all(url, bodies, lead=None):
    """Post every body at once (one connection each); with ``lead``, that body goes first and the
    rest follow while the model is busy with it, so they queue up together."""
    start = threading.Barrier(len(bodies))

    def post(body):
        with httpx.Client(base_url=url, timeout=60) as c:
            start.wait()
            return c.post("/invocations", json=body)

    with ThreadPoolExecutor(len(bodies) + 1) as pool:
        first = pool.submit(httpx.post, f"{url}/invocations", json=lead, timeout=60) if lead else None
        if first is not None:
            time.sleep(0.15)
        results = list(pool.map(post, bodies))
        return results, (first.result() if first else None)


def test_concurrent_requests_share_batches_and_get_their_own_answers(recorder_pkg):
    model, server = _serve(recorder_pkg)
    bodies = []
    for i in range(32):
        texts = [f"r{i}"] if i % 3 else [f"r{i}", f"s{i}"]
        bodies.append(_body(texts, suffix="!" if i % 2 else "?", fmt=("split", "records", "inputs")[i % 3]))
    with server as url:
        results, _ = _post_all(url, bodies, lead=_body(["slow"], suffix=""))
        for body, r in zip(bodies, results):
            assert r.status_code == 200, r.text
            texts = rowwise.merge([scoring.parse_request(jsonio.dumps(body), "application/json")])
            texts = texts["text"] if isinstance(texts, dict) else [row["text"] for row in texts]
            assert r.json() == {"predictions": [t.upper() + body["params"]["suffix"] for t in texts]}
        assert max(model.sizes) > 1, model.sizes
        metrics = httpx.get(f"{url}/metrics").text
    assert _metric(metrics, "hangar_serving_batch_size_count") == len(model.sizes)
    assert _metric(metrics, "hangar_serving_batch_size_bucket", le="1.0") < len(model.sizes)
    assert _metric(metrics, "hangar_serving_batch_requests_sum") == 33


def test_one_bad_request_fails_alone(recorder_pkg):
    model, server = _serve(recorder_pkg)
    good = [_body([f"g{i}"], suffix="") for i in range(8)]
    bad_schema = {"dataframe_split": {"columns": ["text"], "data": [[123]]}, "params": {"suffix": ""}}
    boom = _body(["boom"], suffix="")
    with server as url:
        results, _ = _post_all(url, [*good, bad_schema, boom], lead=_body(["slow"], suffix=""))
        *ok, r_schema, r_boom = results
        assert [r.json() for r in ok] == [{"predictions": [f"G{i}"]} for i in range(8)]
        assert r_schema.status_code == 400 and r_schema.json()["error_code"] == "SCHEMA_MISMATCH"
        assert "string" in r_schema.json()["message"] and "123" in r_schema.json()["message"]
        assert r_boom.status_code == 500 and r_boom.json()["error_code"] == "MODEL_EXECUTION_ERROR"
        assert "secret" not in r_boom.text and "server log" in r_boom.json()["message"]
        batches = httpx.get(f"{url}/metrics").text
    assert _metric(batches, "hangar_serving_batch_requests_bucket", le="1.0") < _metric(
        batches, "hangar_serving_batch_requests_count")  # the failing requests were tried in a merged batch first


def test_score_batch_retries_each_request_alone(recorder_pkg):
    model = hp.load_model(recorder_pkg)
    parse = lambda body: scoring.parse_request(jsonio.dumps(body), "application/json")  # noqa: E731
    batch = [parse(_body(["a"], suffix="")), parse({"dataframe_split": {"columns": ["text"], "data": [[1]]},
                                                   "params": {"suffix": ""}}), parse(_body(["b", "c"], suffix=""))]
    assert batch[0].key == batch[1].key == batch[2].key
    first, second, third = score_batch(model, batch)
    assert jsonio.loads(first) == {"predictions": ["A"]} and jsonio.loads(third) == {"predictions": ["B", "C"]}
    assert isinstance(second, SchemaMismatchError)
    sizes = model.unwrap_python_model().sizes
    assert sizes == [1, 2]  # the merged batch failed its signature check before the model; then each alone


def test_output_count_must_match_rows(recorder_pkg):
    model, server = _serve(recorder_pkg)
    with server as url:
        r = httpx.post(f"{url}/invocations", json=_body(["short", "x"], suffix=""))
        assert r.status_code == 500 and r.json()["error_code"] == "MODEL_EXECUTION_ERROR"
        assert "server log" in r.json()["message"]
        assert httpx.post(f"{url}/invocations", json=_body(["x"], suffix="")).json() == {"predictions": ["X"]}
    with pytest.raises(ModelExecutionError, match="1 outputs for 2 input rows"):
        rowwise.scatter(["a"], [2])


def test_different_params_and_columns_never_share_a_batch():
    parse = lambda body: scoring.parse_request(jsonio.dumps(body), "application/json")  # noqa: E731
    keys = {parse(_body(["a"], suffix="!")).key, parse(_body(["a"], suffix="?")).key, parse(_body(["a"])).key,
            parse({"dataframe_split": {"columns": ["other"], "data": [["a"]]}}).key,
            parse(_body(["a"], fmt="records")).key, parse(_body(["a"], fmt="inputs")).key}
    assert len(keys) == 6
    assert parse(_body(["a", "b"], suffix="!")).rows == 2
    assert parse({"inputs": {"text": "a"}}).kind is None  # no rows: runs alone, output passed through
    assert parse({"dataframe_split": {"columns": ["text"], "data": []}}).kind is None


def test_queue_full_is_503_with_retry_after(recorder_pkg):
    _, server = _serve(recorder_pkg, max_queue=1)
    with server as url:
        results, lead = _post_all(url, [_body(["x"], suffix="")] * 4, lead=_body(["slow"], suffix=""))
        assert lead.status_code == 200
        refused = [r for r in results if r.status_code == 503]
        assert refused, [r.status_code for r in results]
        assert refused[0].json()["error_code"] == "SERVER_OVERLOADED" and refused[0].headers["Retry-After"] == "1"
        assert "retry" in refused[0].json()["message"]
        assert httpx.post(f"{url}/invocations", json=_body(["x"], suffix="")).status_code == 200


def test_timeout_is_504_and_the_server_recovers(recorder_pkg):
    _, server = _serve(recorder_pkg, request_timeout=0.1)
    with server as url:
        results, lead = _post_all(url, [_body(["x"], suffix="")], lead=_body(["slow"], suffix=""))
        assert lead.status_code == 504 and lead.json()["error_code"] == "REQUEST_TIMEOUT"
        assert results[0].status_code == 504  # it waited in the queue behind the slow batch
        time.sleep(0.4)  # the slow batch finishes; its answer is dropped
        assert httpx.post(f"{url}/invocations", json=_body(["x"], suffix="")).json() == {"predictions": ["X"]}


def test_batching_off_runs_each_request_alone(recorder_pkg):
    model, server = _serve(recorder_pkg, batching=False)
    with server as url:
        results, _ = _post_all(url, [_body([f"t{i}"], suffix="") for i in range(12)])
        assert [r.json() for r in results] == [{"predictions": [f"T{i}"]} for i in range(12)]
        r = httpx.post(f"{url}/invocations", json=_body(["short", "x"], suffix=""))
        assert r.json() == {"predictions": ["short"]}  # not row-wise, but nothing is scattered
    assert model.sizes == [1] * 12 + [2]


def test_settings_travel_through_the_environment():
    s = ServingSettings(batching=False, max_batch_size=8, max_wait_ms=1.5, max_queue=3, request_timeout=2.5)
    assert ServingSettings.from_env(s.to_env()) == s
    assert ServingSettings.from_env({}) == ServingSettings()
    with pytest.raises(Exception, match="HANGAR_SERVE_MAX_QUEUE"):
        ServingSettings.from_env({"HANGAR_SERVE_MAX_QUEUE": "many"})


def test_json_fallback_matches_fast_parser():
    doc = {"dataframe_split": {"columns": ["t", "n"], "data": [["é", 1.5], [None, 2]]}, "params": {"k": True}}
    raw = jsonio.std_dumps(doc)
    assert jsonio.std_loads(raw) == jsonio.loads(raw) == doc
    assert jsonio.loads(jsonio.dumps(doc)) == doc


@pytest.mark.parametrize("data", [
    {"s": ["a", "b"], "i": [1, -2], "f": [1, 2.5], "b": [True, False]},
    {"s": ["a"], "i": [2**62], "f": [float("inf")], "b": [False], "extra": ["dropped"]},
    {"s": ["a"], "i": [1], "b": [True]},  # the optional column is absent
])
def test_plain_columns_fast_path_matches_the_general_path(data):
    import pandas as pd

    from hangar.models.enforce import _enforce_plain_columns, enforce_dataframe
    from hangar.models.signature import ColSpec, Schema

    schema = Schema([ColSpec({"type": "string"}, "s"), ColSpec({"type": "long"}, "i"),
                     ColSpec({"type": "double"}, "f", required=False), ColSpec({"type": "boolean"}, "b")])
    fast = _enforce_plain_columns(data, schema)
    general = enforce_dataframe(pd.DataFrame({k: list(v) for k, v in data.items()}), schema)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, general)
    assert list(fast.dtypes.astype(str)) == list(general.dtypes.astype(str))


def test_the_block_built_frame_equals_the_public_constructors(monkeypatch):
    import pandas as pd

    from hangar.models import enforce
    from hangar.models.signature import ColSpec, Schema

    schema = Schema([ColSpec({"type": "string"}, "s"), ColSpec({"type": "long"}, "i"),
                     ColSpec({"type": "double"}, "f"), ColSpec({"type": "boolean"}, "b")])
    data = {"s": ["a", "b", "c"], "i": [1, -2, 3], "f": [1, 2.5, -0.0], "b": [True, False, True]}
    if enforce._block_frame() is None:
        pytest.skip("this pandas has no block constructors as expected: the public ones serve")
    fast = enforce._enforce_plain_columns(data, schema)
    monkeypatch.setattr(enforce, "_block_frame", lambda: None)
    public = enforce._enforce_plain_columns(data, schema)
    pd.testing.assert_frame_equal(fast, public)
    fast.loc[1, "i"] = 7  # writes, a new column and a slice behave as on any frame
    fast["n"] = fast["i"] * 2
    assert fast["n"].tolist() == [2, 14, 6] and fast.iloc[1:, 0].tolist() == ["b", "c"]


def test_plain_columns_frames_share_nothing_a_model_can_change():
    from hangar.models.enforce import _enforce_plain_columns
    from hangar.models.signature import ColSpec, Schema

    schema = Schema([ColSpec({"type": "string"}, "s"), ColSpec({"type": "long"}, "i")])
    first = _enforce_plain_columns({"s": ["a"], "i": [1]}, schema)
    first["added"] = 2  # a model that adds a column, renames, writes in place
    first.columns = ["t", "i", "added"]
    first.loc[0, "i"] = 9
    first.index.name, first.columns.name = "row", "field"
    second = _enforce_plain_columns({"s": ["b"], "i": [2]}, schema)
    assert list(second.columns) == ["s", "i"] and second.to_dict("records") == [{"s": "b", "i": 2}]
    assert second.index.name is None and second.columns.name is None


@pytest.mark.parametrize("data", [{"s": ["a", None], "i": [1, 2], "b": [True, True]}, {"s": ["a"], "i": [1.0], "b": [True]},
                                  {"s": ["a"], "i": [True], "b": [True]}, {"s": ["a"], "b": [True]},
                                  {"s": ["a", "b"], "i": [1], "b": [True]}, {"s": ["a"], "i": [2**64], "b": [True]}])
def test_plain_columns_fast_path_leaves_anything_else_to_the_general_path(data):
    from hangar.models.enforce import _enforce_plain_columns
    from hangar.models.signature import ColSpec, Schema

    schema = Schema([ColSpec({"type": "string"}, "s"), ColSpec({"type": "long"}, "i"), ColSpec({"type": "boolean"}, "b")])
    assert _enforce_plain_columns(data, schema) is None


def test_hangar_serve_passes_its_options_to_every_worker(recorder_pkg):
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "serve", str(recorder_pkg), "--port", str(port),
                             "--workers", "2", "--max-queue", "1", "--max-batch-size", "4", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, lambda: proc.stderr.read().decode())
        results, _ = _post_all(url, [_body(["slow"], suffix="")] * 6)
        codes = sorted(r.status_code for r in results)
        assert codes[0] == 200 and codes[-1] == 503, codes  # each worker holds one request at a time
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
