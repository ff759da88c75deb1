"""Logged models: stored with their run, loadable by models:/<id> and runs:/<run>/<name>."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hangar.chain as hc
import hangar.pyfunc as hp
from hangar.errors import ModelPackageError, NotFoundError
from hangar.tracking import fluent as ht

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture(autouse=True)
def fresh_store(tmp_path, monkeypatch):
    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    ht.set_tracking_uri(None)
    yield
    while ht.active_run():
        ht.end_run()
    ht.set_tracking_uri(None)


def test_log_model_and_load_it_back_by_both_uris():
    sys.path.insert(0, str(ASSETS))
    from hinted_model import HintedLen

    with ht.start_run() as run:
        info = hp.log_model("lengths", HintedLen(), input_example=["abc"], params={"kind": "toy"})
        ht.log_metric("acc", 0.9, model_id=info.model_id)
    assert info.status == "READY" and info.flavors == ("python_function",)
    assert info.run_uri == f"runs:/{run.info.run_id}/lengths"
    assert hp.load_model(info.model_uri).predict(["hello"]) == [5]
    assert hp.load_model(info.run_uri).predict(["hi"]) == [2]
    lm = ht.client().get_logged_model(info.model_id)
    assert lm.source_run_id == run.info.run_id and lm.params == {"kind": "toy"} and lm.metrics == {"acc": 0.9}


def test_chain_of_logged_models():
    sys.path.insert(0, str(ASSETS))
    from hinted_model import HintedLen

    with ht.start_run():
        inner = hp.log_model("inner", HintedLen(), input_example=["abc"])
        outer = hc.log_model("outer", [hc.Model(inner.model_uri)])
    assert hp.load_model(outer.model_uri).predict(["four"]) == [4]


def test_unknown_uris_are_clear():
    with pytest.raises(NotFoundError, match="No logged model"):
        hp.load_model("models:/m-" + "0" * 32)
    with pytest.raises(NotFoundError, match="No run"):
        hp.load_model("runs:/" + "f" * 32 + "/model")
    with pytest.raises(NotFoundError, match="No registered model 'main.default.assistant'"):
        hp.load_model("models:/main.default.assistant@champion")


def test_failed_save_marks_the_logged_model_failed():
    with ht.start_run():
        with pytest.raises(Exception):
            hp.log_model("bad", 42)
    models, _ = ht.client().search_logged_models(filter_string="name = 'bad'")
    assert [m.status for m in models] == ["FAILED"]


@pytest.mark.slow
def test_process_killed_during_log_model_leaves_nothing_loadable(tmp_path):
    """SIGKILL in the middle of log_model: the model never becomes READY; the next try works."""
    home = tmp_path / "home"
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ASSETS)!r})
        import hangar.pyfunc as hp
        from hangar.tracking import fluent as ht

        class Slow(hp.PythonModel):
            def predict(self, context, model_input, params=None):
                return model_input

        big = os.path.join({str(tmp_path)!r}, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(64 << 20))
        run = ht.start_run()
        print(run.info.run_id, flush=True)
        hp.log_model("victim", Slow(), artifacts={{"blob": big}})
        print("finished", flush=True)
    """)
    env = {**os.environ, "HANGAR_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    artifacts = home / "artifacts" / "0"
    deadline = time.time() + 60
    while time.time() < deadline and not any(artifacts.glob("models/*/artifacts/artifacts")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    with pytest.raises((ModelPackageError, NotFoundError)):
        hp.load_model(f"runs:/{run_id}/victim")
    client = ht.client()
    models, _ = client.search_logged_models(filter_string="name = 'victim'")
    assert [m.status for m in models] in (["PENDING"], ["FAILED"])
    with ht.start_run(run_id=run_id):
        info = hp.log_model("victim", lambda rows: rows)
    assert hp.load_model(f"runs:/{run_id}/victim").predict(["x"]).iloc[0, 0] == "x"
    assert info.status == "READY"


def test_artifacts_on_s3_are_downloaded_once_into_the_cache(s3_server, monkeypatch, tmp_path):
    """An object store as the artifact root: log a model there, load it back by URI."""
    import uuid

    from conftest import BUCKET

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["url"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("HANGAR_ARTIFACT_ROOT", f"s3://{BUCKET}/tracking-{uuid.uuid4().hex}")
    ht.set_tracking_uri(None)
    sys.path.insert(0, str(ASSETS))
    from hinted_model import HintedLen

    with ht.start_run() as run:
        info = hp.log_model("lengths", HintedLen(), input_example=["abc"])
        ht.log_text("notes", "notes.txt")
    assert info.artifact_location.startswith("s3://")
    keys = [o["Key"] for o in s3_server["client"].list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(k.endswith(f"{info.model_id}/artifacts/MLmodel") for k in keys)
    model = hp.load_model(info.model_uri)
    assert model.predict(["four"]) == [4]
    assert str(model.path).startswith(str(tmp_path / "home" / "cache" / "models"))
    assert hp.load_model(f"runs:/{run.info.run_id}/lengths").path == model.path  # cached, not downloaded again


def test_log_model_can_register_in_one_call():
    sys.path.insert(0, str(ASSETS))
    from hinted_model import HintedLen

    with ht.start_run():
        info = hp.log_model("lengths", HintedLen(), input_example=["abc"], registered_model_name="main.default.lengths")
    assert info.registered_version.version == 1 and info.registered_version.logged_model_id == info.model_id
    assert hp.load_model("models:/main.default.lengths/1").predict(["ab"]) == [2]
