"""Property-based fuzzing of a served model through its own OpenAPI document (schemathesis):
valid and invalid bodies, wrong types, missing fields, odd content types. Bad input must get a
4xx with a JSON error body — never a 500 — and the server must stay up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

MODEL_CODE = '''
import hangar.pyfunc as hp
from hangar.models import set_model


class Length(hp.PythonModel):
    def predict(self, context, model_input, params=None):
        scale = (params or {}).get("scale", 1)
        return [len(str(t)) * scale for t in model_input["text"]]


set_model(Length())
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import hangar.pyfunc as hp
    from hangar.models import infer_signature

    d = tmp_path_factory.mktemp("fuzz")
    (d / "model.py").write_text(MODEL_CODE)
    sig = infer_signature({"text": ["hi"], "n": [1]}, params={"scale": 1})
    pkg = hp.save_model(d / "pkg", python_model=str(d / "model.py"), signature=sig,
                        input_example={"text": ["hi"], "n": [1]})
    port = _free_port()
    log = open(d / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "serve", str(pkg), "--port", str(port),
                             "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail((d / "server.log").read_text())
    yield base, proc, d / "server.log"
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def test_fuzz_openapi_routes_never_500(served):
    from hypothesis import HealthCheck, given, settings

    base, proc, log_path = served
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
    failures: list[str] = []
    calls: dict[str, int] = {}

    for result in schema.get_all_operations():
        operation = result.ok()

        examples = 300 if operation.method.upper() == "POST" else 5

        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE)
                                   | operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE))
        def check(case):
            response = case.call(base_url=base, timeout=10)
            calls[case.path] = calls.get(case.path, 0) + 1
            status = response.status_code
            if status >= 500:
                failures.append(f"{case.method} {case.path} -> {status}: {response.text[:200]} body={case.body!r:.200}")
            elif status >= 400:
                doc = response.json()
                assert set(doc) >= {"error_code", "message"}, response.text

        check()
    assert calls.get("/invocations", 0) >= 200 and len(calls) >= 5, calls
    assert proc.poll() is None, "the server must stay up"
    assert not failures, "\n".join(failures[:10])
    assert "Traceback" not in log_path.read_text()


@pytest.mark.parametrize("body, content_type", [
    (b"\xff\xfe\x00", "application/json"),
    (b'{"dataframe_split": {"columns": ["text"], "data": [[1, 2, 3]]}}', "application/json"),
    (b'{"dataframe_records": [{"text": {"nested": []}}]}', "application/json"),
    (b'{"inputs": {"text": "x"}, "params": {"scale": "big"}}', "application/json"),
    (b'{"inputs": {"text": "x"}, "params": {"unknown": 1}}', "application/json"),
    (b"text\n\"unterminated", "text/csv"),
    (b'{"instances": 7}', "application/json"),
    (b"[]", "application/json"),
    (b'{"dataframe_split": {"data": [[1e400]]}}', "application/json"),
    (b"{}", "application/xml"),
])
def test_hand_picked_bad_bodies_are_4xx(served, body, content_type):
    base, proc, _ = served
    response = httpx.post(f"{base}/invocations", content=body, headers={"content-type": content_type}, timeout=10)
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) >= {"error_code", "message"}
    assert proc.poll() is None
