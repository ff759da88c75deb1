"""Shared test set-up: offline Hugging Face, and a private HANGAR_HOME for the session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _hangar_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("hangar-home")
    old = os.environ.get("HANGAR_HOME")
    os.environ["HANGAR_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("HANGAR_HOME", None)
    else:
        os.environ["HANGAR_HOME"] = old
