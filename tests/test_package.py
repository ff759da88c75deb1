"""The package format: manifest fields, atomic saves, checksums, and loading errors."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import hangar.pyfunc as hp
from hangar.errors import (
    CorruptPackageError,
    InvalidArgumentError,
    ModelPackageError,
    NotFoundError,
    UnsupportedFormatError,
)
from hangar.models.manifest import FORMAT_VERSION

ASSETS = Path(__file__).parent / "assets"


class LenModel(hp.PythonModel):
    def predict(self, context, model_input, params=None):
        return [len(s) for s in model_input.iloc[:, 0]]


@pytest.fixture
def pkg(tmp_path):
    return hp.save_model(tmp_path / "len", LenModel(), input_example=["abc"])


def test_manifest_has_mlflow_fields_and_checksums(pkg):
    m = yaml.safe_load((pkg / "MLmodel").read_text())
    for key in ("artifact_path", "flavors", "model_uuid", "utc_time_created", "signature",
                "saved_input_example_info", "hangar_version", "format_version", "checksums", "model_size_bytes"):
        assert key in m, key
    assert m["format_version"] == FORMAT_VERSION
    conf = m["flavors"]["python_function"]
    assert conf["loader_module"] == "hangar.models.flavors.python_model"
    assert conf["env"] == {"virtualenv": "python_env.yaml"}
    assert isinstance(m["signature"]["inputs"], str)  # JSON inside YAML, as MLflow writes it
    files = {p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file()} - {"MLmodel"}
    assert set(m["checksums"]) == files
    assert {"python_model.pkl", "requirements.txt", "python_env.yaml", "input_example.json",
            "serving_input_example.json"} <= files
    assert m["saved_input_example_info"]["type"] == "dataframe"


def test_round_trip_predict_and_example(pkg):
    model = hp.load_model(pkg)
    assert model.predict(["hello", "hi"]) == [5, 2]
    assert model.input_example.iloc[0, 0] == "abc"
    assert "LenModel" in repr(model.unwrap_python_model()) or isinstance(model.unwrap_python_model(), LenModel)


def test_requirements_are_inferred_and_pinned(pkg):
    reqs = (pkg / "requirements.txt").read_text().split()
    assert reqs[0].startswith("hangar==")
    assert any(r.startswith("cloudpickle==") for r in reqs)
    env = yaml.safe_load((pkg / "python_env.yaml").read_text())
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["dependencies"] == ["-r requirements.txt"]


def test_pip_requirements_replace_and_extra_add(tmp_path):
    a = hp.save_model(tmp_path / "a", LenModel(), pip_requirements=["numpy>=1"])
    assert (a / "requirements.txt").read_text().split()[1:] == ["numpy>=1"]
    b = hp.save_model(tmp_path / "b", LenModel(), extra_pip_requirements=["rich"])
    assert "rich" in (b / "requirements.txt").read_text().split()
    with pytest.raises(InvalidArgumentError, match="not both"):
        hp.save_model(tmp_path / "c", LenModel(), pip_requirements=["x"], extra_pip_requirements=["y"])


def test_save_refuses_existing_path(pkg):
    with pytest.raises(InvalidArgumentError, match="already exists"):
        hp.save_model(pkg, LenModel())


def test_failed_save_leaves_nothing_behind(tmp_path):
    class Unpicklable(hp.PythonModel):
        def __init__(self):
            import threading
            self.lock = threading.Lock()

    with pytest.raises(Exception):
        hp.save_model(tmp_path / "bad", Unpicklable())
    assert list(tmp_path.iterdir()) == []


def test_save_is_atomic_for_a_concurrent_reader(tmp_path):
    """A reader polling the target path sees no package or a whole one, never a partial one."""
    target = tmp_path / "m"
    script = f"""
import time, os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
p = Path({str(target)!r})
seen = 0
deadline = time.time() + 20
while time.time() < deadline:
    if p.exists():
        assert (p / "MLmodel").is_file(), "package visible without its manifest"
        import hangar.pyfunc as hp
        hp.load_model(p)
        print("ok"); break
"""
    reader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 << 20))
    hp.save_model(target, LenModel(), artifacts={"blob": str(big)})
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0 and out.strip() == "ok"


def test_corrupted_file_is_named(pkg):
    path = pkg / "python_model.pkl"
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptPackageError, match=r"python_model.pkl: content does not match"):
        hp.load_model(pkg)


def test_truncated_file_is_named(pkg):
    path = pkg / "python_model.pkl"
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(CorruptPackageError, match=r"python_model.pkl: 10 bytes, expected \d+ \(truncated"):
        hp.load_model(pkg)


def test_missing_file_is_named(pkg):
    (pkg / "requirements.txt").unlink()
    with pytest.raises(CorruptPackageError, match="requirements.txt: missing"):
        hp.load_model(pkg)


def test_missing_manifest(tmp_path, pkg):
    (pkg / "MLmodel").unlink()
    with pytest.raises(ModelPackageError, match="has no MLmodel file"):
        hp.load_model(pkg)
    with pytest.raises(NotFoundError, match="does not exist"):
        hp.load_model(tmp_path / "nowhere")


def test_malformed_manifest(pkg):
    (pkg / "MLmodel").write_text("flavors: [unclosed")
    with pytest.raises(CorruptPackageError, match="not valid YAML"):
        hp.load_model(pkg)
    (pkg / "MLmodel").write_text("just a string")
    with pytest.raises(CorruptPackageError, match="not a YAML mapping"):
        hp.load_model(pkg)


def test_newer_format_version_is_refused_clearly(pkg):
    m = yaml.safe_load((pkg / "MLmodel").read_text())
    m["format_version"] = FORMAT_VERSION + 1
    m["hangar_version"] = "9.0.0"
    (pkg / "MLmodel").write_text(yaml.safe_dump(m))
    with pytest.raises(UnsupportedFormatError, match=r"format version 2, written by Hangar 9.0.0.*Upgrade Hangar"):
        hp.load_model(pkg)


@pytest.mark.parametrize("loader", ["os", "hangar.cli.main", "mlflow.pyfunc.model"])
def test_unregistered_loader_module_is_refused(pkg, loader):
    m = yaml.safe_load((pkg / "MLmodel").read_text())
    m["flavors"]["python_function"]["loader_module"] = loader
    (pkg / "MLmodel").write_text(yaml.safe_dump(m))
    with pytest.raises(UnsupportedFormatError, match="not a registered Hangar flavor"):
        hp.load_model(pkg)


def test_third_party_flavor_registered_by_entry_point(pkg, tmp_path, monkeypatch):
    """A distribution that registers a module in 'hangar.flavors' can load packages."""
    site = tmp_path / "site"
    (site / "acme_flavor").mkdir(parents=True)
    (site / "acme_flavor" / "__init__.py").write_text(
        "class _M:\n    def predict(self, data, params=None):\n        return 'acme'\n"
        "def _load_pyfunc(path, manifest):\n    return _M()\n")
    dist = site / "acme_flavor-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-flavor\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hangar.flavors]\nacme = acme_flavor\n")
    monkeypatch.syspath_prepend(str(site))
    m = yaml.safe_load((pkg / "MLmodel").read_text())
    m["flavors"]["python_function"]["loader_module"] = "acme_flavor"
    (pkg / "MLmodel").write_text(yaml.safe_dump(m))
    assert hp.load_model(pkg).predict(["x"]) == "acme"


def test_manifest_path_escape_is_refused(pkg):
    m = yaml.safe_load((pkg / "MLmodel").read_text())
    m["checksums"]["../outside"] = {"sha256": "0", "size": 1}
    (pkg / "MLmodel").write_text(yaml.safe_dump(m))
    with pytest.raises(CorruptPackageError, match="outside the package"):
        hp.load_model(pkg)


def test_copied_package_still_loads(pkg, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(pkg, copy)
    assert hp.load_model(copy).predict(["abcd"]) == [4]
