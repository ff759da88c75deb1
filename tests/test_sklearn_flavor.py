"""The sklearn flavor, and plain callables through hangar.pyfunc."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("sklearn")

import hangar.pyfunc  # noqa: E402
import hangar.sklearn  # noqa: E402
from hangar.errors import CorruptPackageError, InvalidArgumentError, SchemaMismatchError  # noqa: E402

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _iris_like(n_per_class: int = 30, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
    X = np.vstack([c + rng.normal(scale=0.25, size=(n_per_class, 4)) for c in centers])
    y = np.repeat([0, 1, 2], n_per_class)
    return pd.DataFrame(X, columns=FEATURES), y


@pytest.fixture(scope="module")
def fitted():
    from sklearn.linear_model import LogisticRegression

    X, y = _iris_like()
    return LogisticRegression(max_iter=500).fit(X, y), X


def test_save_load_round_trip(tmp_path, fitted):
    clf, X = fitted
    path = hangar.sklearn.save_model(tmp_path / "m", clf, input_example=X.head(3))

    manifest = yaml.safe_load((path / "MLmodel").read_text())
    assert manifest["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    assert manifest["flavors"]["python_function"]["loader_module"] == "hangar.models.flavors.sklearn"
    assert manifest["signature"]["outputs"]  # inferred by running predict on the example
    reqs = (path / "requirements.txt").read_text().splitlines()
    for dist in ("scikit-learn==", "cloudpickle==", "numpy==", "hangar=="):
        assert any(r.startswith(dist) for r in reqs), reqs

    expected = clf.predict(X)
    native = hangar.sklearn.load_model(path)
    assert type(native).__name__ == "LogisticRegression"
    np.testing.assert_array_equal(native.predict(X), expected)

    model = hangar.pyfunc.load_model(path)
    np.testing.assert_array_equal(np.asarray(model.predict(X)), expected)
    # rows as dicts go through the same signature enforcement
    rows = X.head(2).to_dict(orient="records")
    np.testing.assert_array_equal(np.asarray(model.predict(rows)), expected[:2])


def test_wrong_column_is_a_schema_mismatch(tmp_path, fitted):
    clf, X = fitted
    model = hangar.pyfunc.load_model(hangar.sklearn.save_model(tmp_path / "m", clf, input_example=X.head(3)))
    bad = X.rename(columns={"petal_width": "petal_wdith"})
    with pytest.raises(SchemaMismatchError, match="petal_width"):
        model.predict(bad)


def test_predict_proba_as_pyfunc_predict_fn(tmp_path, fitted):
    clf, X = fitted
    path = hangar.sklearn.save_model(tmp_path / "m", clf, input_example=X.head(2), pyfunc_predict_fn="predict_proba")
    out = hangar.pyfunc.load_model(path).predict(X.head(5))
    assert np.asarray(out).shape == (5, 3)
    np.testing.assert_allclose(out, clf.predict_proba(X.head(5)))


def test_transform_and_numpy_trained_estimator(tmp_path):
    from sklearn.preprocessing import StandardScaler

    X, _ = _iris_like()
    scaler = StandardScaler().fit(X.to_numpy())  # fitted without feature names
    path = hangar.sklearn.save_model(tmp_path / "m", scaler, input_example=X.to_numpy()[:2],
                                     pyfunc_predict_fn="transform")
    out = hangar.pyfunc.load_model(path).predict(X.to_numpy()[:4])
    np.testing.assert_allclose(out, scaler.transform(X.to_numpy()[:4]))


def test_text_pipeline_gets_one_dimensional_input(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = ["good great fine", "great good", "bad awful", "awful terrible bad"]
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 1, 0, 0])
    path = hangar.sklearn.save_model(tmp_path / "m", pipe, input_example=pd.DataFrame({"text": texts[:2]}))
    out = hangar.pyfunc.load_model(path).predict(pd.DataFrame({"text": ["good fine", "terrible"]}))
    assert list(out) == list(pipe.predict(["good fine", "terrible"]))


def test_unknown_predict_fn_is_refused(tmp_path, fitted):
    clf, _ = fitted
    with pytest.raises(InvalidArgumentError, match="no method 'transform'"):
        hangar.sklearn.save_model(tmp_path / "m", clf, pyfunc_predict_fn="transform")
    assert not (tmp_path / "m").exists()


def test_tampered_pickle_is_refused_before_unpickling(tmp_path, fitted):
    clf, X = fitted
    path = hangar.sklearn.save_model(tmp_path / "m", clf, input_example=X.head(1))
    (path / "model.pkl").write_bytes(b"not the pickle that was saved")
    with pytest.raises(CorruptPackageError):
        hangar.sklearn.load_model(path)


def test_plain_callable_as_pyfunc(tmp_path):
    def double_total(df):
        return (df["a"] + df["b"]) * 2

    path = hangar.pyfunc.save_model(tmp_path / "fn", double_total, input_example=pd.DataFrame({"a": [1.0], "b": [2.0]}))
    model = hangar.pyfunc.load_model(path)
    out = model.predict(pd.DataFrame({"a": [1.0, 2.5], "b": [2.0, 0.5]}))
    assert list(out) == [6.0, 6.0]
    with pytest.raises(SchemaMismatchError):
        model.predict(pd.DataFrame({"a": [1.0]}))
