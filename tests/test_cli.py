"""The command line: tables, JSON output, and clear errors instead of tracebacks."""

import json
import subprocess
import sys

import pytest

import hangar.pyfunc as hp
from hangar.cli.main import main


class Len(hp.PythonModel):
    def predict(self, context, model_input, params=None):
        return [len(s) for s in model_input.iloc[:, 0]]


@pytest.fixture
def pkg(tmp_path):
    return hp.save_model(tmp_path / "m", Len(), input_example=["abc"])


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_.value.code or 0, out.out, out.err


def test_predict_prints_json(capsys, pkg):
    code, out, _ = run(capsys, "models", "predict", str(pkg), "--input", '["hello", "hi"]')
    assert code == 0 and json.loads(out) == [5, 2]


def test_predict_from_file(capsys, pkg, tmp_path):
    f = tmp_path / "in.json"
    f.write_text('[{"0": "abcd"}]')
    code, out, _ = run(capsys, "models", "predict", str(pkg), "--input", f"@{f}")
    assert code == 0 and json.loads(out) == [4]


@pytest.mark.parametrize("args,message", [
    (["--input", "{nope"], "--input is not valid JSON"),
    (["--input", "[1, 2]"], "expects string"),
    (["--input", '["x"]', "--params", '{"k": 1}'], "accepts no params"),
])
def test_bad_input_gives_clear_error_not_traceback(capsys, pkg, args, message):
    code, out, err = run(capsys, "models", "predict", str(pkg), *args)
    assert code == 1 and message in err and "Traceback" not in err


def test_missing_package(capsys, tmp_path):
    code, _, err = run(capsys, "models", "verify", str(tmp_path / "nope"))
    assert code == 3 and "does not exist" in err


def test_verify_and_inspect(capsys, pkg):
    code, out, _ = run(capsys, "models", "verify", str(pkg))
    assert code == 0 and "files match" in out
    code, out, _ = run(capsys, "models", "inspect", str(pkg))
    assert code == 0 and "python_function" in out and "signature" in out


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "hangar.cli.main", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for noun in ("demo", "env", "models"):
        assert noun in out.stdout


def test_experiments_and_runs_commands(capsys, tmp_path, monkeypatch):
    from hangar.tracking import fluent as ht

    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    code, out, _ = run(capsys, "experiments", "create", "fraud", "--json")
    eid = json.loads(out)["experiment_id"]
    ht.set_tracking_uri(None)
    ht.set_experiment("fraud")
    for i in range(3):
        with ht.start_run():
            ht.log_metric("acc", i / 3)
    ht.set_tracking_uri(None)
    code, out, _ = run(capsys, "runs", "list", "--experiment-id", eid, "--filter", "metrics.acc > 0.1",
                       "--order-by", "metrics.acc DESC", "--json")
    found = json.loads(out)
    assert code == 0 and [r["data"]["metrics"]["acc"] for r in found] == [2 / 3, 1 / 3]
    code, out, _ = run(capsys, "runs", "get", found[0]["info"]["run_id"])
    assert code == 0 and "metrics.acc" in out
    code, _, err = run(capsys, "runs", "get", "nope")
    assert code == 3 and "No run" in err
    code, _, err = run(capsys, "runs", "list", "--filter", "metrics.acc >> 1")
    assert code == 1 and "Invalid filter" in err
    code, out, _ = run(capsys, "experiments", "delete", eid)
    code, out, _ = run(capsys, "experiments", "list", "--view", "deleted", "--json")
    assert [e["name"] for e in json.loads(out)] == ["fraud"]


@pytest.mark.parametrize("uri,message", [
    ("mysql://x/y", "Unsupported store URI"),
    ("postgresql://postgres@127.0.0.1:1/test", "Cannot open the store"),
    ("sqlite:////proc/no/such/dir/hangar.db", "Cannot create the store's folder"),
    ("http://127.0.0.1:1", "Cannot reach the Hangar server at http://127.0.0.1:1"),
])
def test_unusable_store_uris_are_clear(capsys, monkeypatch, uri, message):
    monkeypatch.setenv("HANGAR_TRACKING_URI", uri)
    code, _, err = run(capsys, "runs", "list")
    assert code == 1 and message in err and "Traceback" not in err
