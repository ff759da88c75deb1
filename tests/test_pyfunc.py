"""The universal interface: custom models (pickled or from code), artifacts, streaming, inputs."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import hangar
import hangar.pyfunc as hp
from hangar.errors import (
    InvalidArgumentError,
    ModelExecutionError,
    ModelPackageError,
    SchemaMismatchError,
    StreamingNotSupportedError,
    UnknownParamError,
)
from hangar.models import infer_signature
from hangar.models.llm_payloads import chat_response

ASSETS = Path(__file__).parent / "assets"
CHAT = {"messages": [{"role": "user", "content": "hello there"}]}


class EchoChat(hp.PythonModel):
    def predict(self, context, model_input, params=None):
        return chat_response(model_input["messages"][-1]["content"][: params["max_tokens"]])

    def predict_stream(self, context, model_input, params=None):
        for word in model_input["messages"][-1]["content"].split():
            yield {"delta": word + " "}


class WithArtifact(hp.PythonModel):
    def load_context(self, context):
        self.words = Path(context.artifacts["vocab"]).read_text().split()

    def predict(self, context, model_input, params=None):
        return [w in self.words for w in model_input["word"]]


def test_model_from_code_needs_no_pickle(tmp_path):
    path = hp.save_model(tmp_path / "m", str(ASSETS / "code_model.py"), input_example=["a"],
                         model_config={"suffix": "!"})
    assert not (path / "python_model.pkl").exists()
    model = hp.load_model(path)
    assert model.predict(["ab"]) == ["AB!"]
    assert model.streamable and list(model.predict_stream(["x", "y"])) == ["X", "Y"]
    assert "pandas" not in (path / "requirements.txt").read_text()  # code file imports only hangar


def test_model_from_code_in_a_fresh_process(tmp_path):
    path = hp.save_model(tmp_path / "m", str(ASSETS / "code_model.py"), input_example=["a"])
    out = subprocess.run([sys.executable, "-c", f"import hangar.pyfunc as hp; print(hp.load_model({str(path)!r}).predict(['q']))"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['Q']"


def test_code_file_without_set_model(tmp_path):
    f = tmp_path / "nothing.py"
    f.write_text("x = 1\n")
    with pytest.raises(ModelPackageError, match="never called hangar.models.set_model"):
        hp.save_model(tmp_path / "m", str(f))


def test_artifacts_are_copied_and_passed_to_context(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("apple pear")
    path = hp.save_model(tmp_path / "m", WithArtifact(), artifacts={"vocab": str(vocab)},
                         input_example=pd.DataFrame({"word": ["apple"]}))
    vocab.unlink()  # the package holds its own copy
    assert hp.load_model(path).predict({"word": ["apple", "kiwi"]}) == [True, False]


def test_code_paths_make_helpers_importable(tmp_path):
    class UsesHelper(hp.PythonModel):
        def predict(self, context, model_input, params=None):
            import helpers_mod
            return [helpers_mod.double(x) for x in model_input.iloc[:, 0]]

    path = hp.save_model(tmp_path / "m", UsesHelper(), code_paths=[str(ASSETS / "helpers_mod.py")], input_example=[1])
    assert (path / "code" / "helpers_mod.py").is_file()
    assert hp.load_model(path).predict([2, 3]) == [4, 6]


def test_plain_callable(tmp_path):
    path = hp.save_model(tmp_path / "m", lambda df: df["x"] * 2, input_example={"x": [1]})
    assert hp.load_model(path).predict({"x": [3]}).tolist() == [6]


def test_chat_payload_params_and_streaming(tmp_path):
    sig = infer_signature(CHAT, params={"max_tokens": 5, "temperature": 0.0})
    path = hp.save_model(tmp_path / "chat", EchoChat(), signature=sig, task="llm/v1/chat", input_example=CHAT)
    model = hp.load_model(path)
    assert model.task == "llm/v1/chat" and model.input_mode == "payload"
    assert model.predict(CHAT)["choices"][0]["message"]["content"] == "hello"
    assert model.predict(CHAT, params={"max_tokens": 2})["choices"][0]["message"]["content"] == "he"
    batch = model.predict([CHAT, CHAT])
    assert isinstance(batch, list) and len(batch) == 2
    assert "".join(c["delta"] for c in model.predict_stream(CHAT)) == "hello there "
    with pytest.raises(UnknownParamError):
        model.predict(CHAT, params={"top_k": 1})
    with pytest.raises(SchemaMismatchError, match="missing the required field 'messages'"):
        model.predict({"prompt": "hi"})


def test_predict_stream_unsupported(tmp_path):
    class Plain(hp.PythonModel):
        def predict(self, context, model_input, params=None):
            return 1

    model = hp.load_model(hp.save_model(tmp_path / "m", Plain()))
    with pytest.raises(StreamingNotSupportedError, match="does not support streaming"):
        model.predict_stream(["x"])


def test_model_errors_are_wrapped(tmp_path):
    class Boom(hp.PythonModel):
        def predict(self, context, model_input, params=None):
            raise ValueError("kaboom")

    model = hp.load_model(hp.save_model(tmp_path / "m", Boom()))
    with pytest.raises(ModelExecutionError, match="ValueError: kaboom"):
        model.predict(["x"])


def test_invalid_python_model_argument(tmp_path):
    with pytest.raises(InvalidArgumentError, match="PythonModel instance, a callable, or a path"):
        hp.save_model(tmp_path / "m", 42)
    with pytest.raises(InvalidArgumentError, match="existing .py file"):
        hp.save_model(tmp_path / "m", str(tmp_path / "missing.py"))


def test_unknown_task_is_rejected(tmp_path):
    with pytest.raises(InvalidArgumentError, match="Unknown task"):
        hp.save_model(tmp_path / "m", EchoChat(), task="chat")


def test_registry_uris_resolve_through_the_installed_resolver():
    """The package layer finds the registry's resolver by entry point, never by import."""
    from hangar.errors import NotFoundError

    with pytest.raises(NotFoundError, match="No registered model 'main.default.nobody'"):
        hp.load_model("models:/main.default.nobody@champion")


def test_public_api_is_curated():
    assert hangar.__all__ == sorted(hangar.__all__)
    assert hp.__all__ == sorted(hp.__all__)
    for name in hangar.__all__:
        assert getattr(hangar, name) is not None


def test_import_hangar_is_light():
    code = "import sys, hangar; print(','.join(m for m in ('pandas', 'numpy', 'yaml', 'torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == ""


def test_list_type_hint_gets_a_plain_list_without_pandas(tmp_path):
    sys.path.insert(0, str(ASSETS))
    from hinted_model import HintedLen

    path = hp.save_model(tmp_path / "m", HintedLen(), input_example=["abc"])
    model = hp.load_model(path)
    assert model.input_mode == "list"
    assert model.predict(["hello", "hi"]) == [5, 2]
    assert model.predict(pd.DataFrame({"t": ["abcd"]})) == [4]
    with pytest.raises(SchemaMismatchError, match=r"row 1 expects string but got int"):
        model.predict(["ok", 3])
    code = (f"import sys; sys.path.insert(0, {str(ASSETS)!r}); import hangar.pyfunc as hp; "
            f"print(hp.load_model({str(path)!r}).predict(['abc'])); print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[3]", "False"]


def test_list_type_hint_with_named_columns_gets_row_dicts(tmp_path):
    class Rows(hp.PythonModel):
        def predict(self, context, model_input: list[dict], params=None):
            return [r["a"] + r["b"] for r in model_input]

    model = hp.load_model(hp.save_model(tmp_path / "m", Rows(), input_example=[{"a": 1, "b": 2.5}]))
    assert model.predict({"a": [1, 2], "b": [1.0, 2.0]}) == [2.0, 4.0]
    with pytest.raises(SchemaMismatchError, match="missing the required field 'b'"):
        model.predict([{"a": 1}])
