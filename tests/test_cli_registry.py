"""The registry on the command line: catalogs, schemas, models, versions, aliases and gc, with
--json for scripts and the exit codes they rely on (0 ok, 1 refused, 2 usage, 3 not found)."""

import json
import sys
from pathlib import Path

import pytest

import hangar.pyfunc as hp
from hangar.cli.main import main

ASSETS = Path(__file__).parent / "assets"
sys.path.insert(0, str(ASSETS))
from hinted_model import HintedLen  # noqa: E402


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The default SQLite store under a fresh HANGAR_HOME."""
    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HANGAR_TRACKING_URI", raising=False)
    monkeypatch.delenv("HANGAR_ARTIFACT_ROOT", raising=False)
    return tmp_path / "home"


@pytest.fixture
def pkg(tmp_path):
    return str(hp.save_model(tmp_path / "pkg", HintedLen(), input_example=["abc"]))


@pytest.fixture
def cli(capsys, home):
    def run(*argv, as_json=False):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--json"] if as_json else list(argv))
            raise SystemExit(0)
        out = capsys.readouterr()
        code = exit_.value.code or 0
        if as_json and code == 0:
            return code, json.loads(out.out), out.err
        return code, out.out, out.err
    return run


def test_catalogs_and_schemas(cli):
    code, cat, _ = cli("catalogs", "create", "prod", "--comment", "production", as_json=True)
    assert code == 0 and (cat["name"], cat["comment"]) == ("prod", "production")
    code, cats, _ = cli("catalogs", "list", as_json=True)
    assert [c["name"] for c in cats] == ["main", "prod"]
    assert cli("catalogs", "create", "prod")[0] == 1  # already exists
    code, sch, _ = cli("schemas", "create", "prod.support", as_json=True)
    assert code == 0 and sch["full_name"] == "prod.support"
    code, schemas, _ = cli("schemas", "list", "prod", as_json=True)
    assert [s["full_name"] for s in schemas] == ["prod.support"]
    code, out, _ = cli("schemas", "list", "prod")
    assert code == 0 and "prod.support" in out
    code, _, err = cli("catalogs", "delete", "prod")
    assert code == 1 and "Error [INVALID_STATE]" in err and "still has schemas" in err
    code, _, err = cli("schemas", "list", "nope")
    assert code == 3 and "No catalog" in err
    assert cli("schemas", "create", "justone")[0] == 1
    assert cli("schemas", "delete", "prod.support", as_json=True)[1] == {"deleted": "prod.support"}
    assert cli("catalogs", "delete", "prod", as_json=True)[1] == {"deleted": "prod"}
    assert cli("catalogs", "delete", "prod")[0] == 3


def test_models_versions_and_aliases(cli, pkg):
    code, m, _ = cli("models", "create", "assistant", "--comment", "helps", "--tag", "team=cx", as_json=True)
    assert code == 0 and m["full_name"] == "main.default.assistant" and m["tags"] == {"team": "cx"}
    code, out, _ = cli("versions", "register", pkg, "assistant", "--comment", "first", "--tag", "stage=qa")
    assert code == 0 and "version 1" in out and "models:/main.default.assistant/1" in out
    code, v2, _ = cli("versions", "register", pkg, "assistant", as_json=True)
    assert (v2["version"], v2["status"]) == (2, "READY")
    code, v3, _ = cli("versions", "register", pkg, "main.default.other", as_json=True)
    assert code == 0 and v3["full_name"] == "main.default.other"

    code, found, _ = cli("models", "list", "--tag", "team=cx", as_json=True)
    assert [x["full_name"] for x in found] == ["main.default.assistant"]
    code, found, _ = cli("models", "list", "--name-like", "main.default.%", "--catalog", "main", as_json=True)
    assert [x["full_name"] for x in found] == ["main.default.assistant", "main.default.other"]
    assert cli("models", "tag", "assistant", "owner", "ana", as_json=True)[1]["tags"] == {"team": "cx", "owner": "ana"}

    code, move, _ = cli("aliases", "set", "assistant", "champion", "1", as_json=True)
    assert code == 0 and (move["version"], move["previous_version"]) == (1, None)
    code, out, _ = cli("aliases", "set", "assistant", "champion", "2")
    assert code == 0 and "version 2 (was version 1)" in out
    code, mv, _ = cli("aliases", "get", "assistant", "champion", as_json=True)
    assert mv["version"] == 2 and mv["aliases"] == ["champion"]
    code, found, _ = cli("models", "list", "--alias", "champion", as_json=True)
    assert [x["full_name"] for x in found] == ["main.default.assistant"]
    code, got, _ = cli("models", "get", "assistant", as_json=True)
    assert got["model"]["aliases"] == {"champion": 2} and [v["version"] for v in got["latest_versions"]] == [2, 1]
    code, out, _ = cli("models", "get", "assistant")
    assert code == 0 and "@champion" in out and "latest versions" in out

    code, mv, _ = cli("versions", "get", "assistant", "1", as_json=True)
    assert (mv["comment"], mv["tags"]) == ("first", {"stage": "qa"})
    assert cli("versions", "tag", "assistant", "1", "stage", "prod", as_json=True)[1]["tags"] == {"stage": "prod"}
    assert cli("versions", "comment", "assistant", "1", "edited", as_json=True)[1]["comment"] == "edited"
    code, out, _ = cli("versions", "get", "assistant", "1")
    assert code == 0 and "edited" in out and "tags.stage" in out

    # refusals (1), missing things (3), usage errors (2)
    code, _, err = cli("versions", "delete", "assistant", "2")
    assert code == 1 and "@champion" in err and "--force" in err and "Traceback" not in err
    code, _, err = cli("models", "delete", "assistant")
    assert code == 1 and "--force" in err
    code, _, err = cli("models", "get", "nope")
    assert code == 3 and "No registered model 'main.default.nope'" in err
    assert cli("versions", "list", "nope")[0] == 3
    assert cli("versions", "get", "assistant", "9")[0] == 3
    assert cli("aliases", "get", "assistant", "nope")[0] == 3
    assert cli("aliases", "history", "nope")[0] == 3
    assert cli("versions", "get", "assistant", "one")[0] == 1
    assert cli("aliases", "set", "assistant", "latest", "1")[0] == 1  # reserved
    assert cli("models", "create", "x", "--tag", "novalue")[0] == 2
    assert cli("versions", "register", pkg, "assistant", "--tag", "=v")[0] == 2

    code, deleted, _ = cli("versions", "delete", "assistant", "2", "--force", as_json=True)
    assert code == 0 and deleted == {"deleted": {"name": "main.default.assistant", "version": 2}}
    code, listed, _ = cli("versions", "list", "assistant", as_json=True)
    assert [v["version"] for v in listed] == [1]
    code, listed, _ = cli("versions", "list", "assistant", "--include-deleted", as_json=True)
    assert [(v["version"], v["deleted"]) for v in listed] == [(2, True), (1, False)]
    code, listed, _ = cli("versions", "list", "assistant", "--status", "FAILED", as_json=True)
    assert listed == []
    code, out, _ = cli("versions", "list", "assistant", "--include-deleted")
    assert code == 0 and "(deleted)" in out

    cli("aliases", "set", "assistant", "challenger", "1")
    assert cli("aliases", "delete", "assistant", "challenger", as_json=True)[0] == 0
    assert cli("aliases", "delete", "assistant", "challenger")[0] == 3
    code, moves, _ = cli("aliases", "history", "assistant", "champion", as_json=True)
    assert [(m["previous_version"], m["version"]) for m in moves] == [(None, 1), (1, 2), (2, None)]
    code, out, _ = cli("aliases", "history", "assistant")
    assert code == 0 and "1 → 2" in out and "@challenger" in out and "(removed)" in out

    assert cli("models", "delete", "other", as_json=True)[1] == {"deleted": "main.default.other"}
    assert cli("models", "get", "other")[0] == 3


def test_gc_command(cli, pkg, home):
    cli("versions", "register", pkg, "assistant")
    cli("versions", "register", pkg, "assistant")
    location = home / "artifacts" / "registry" / "main" / "default" / "assistant" / "2"
    expected = sum(f.stat().st_size for f in location.rglob("*") if f.is_file())
    cli("versions", "delete", "assistant", "2")
    code, dry, _ = cli("gc", "--dry-run", as_json=True)
    assert code == 0 and dry["dry_run"] and dry["freed_bytes"] == expected and location.is_dir()
    code, out, _ = cli("gc", "--dry-run", "--cache-days", "0", "--env-days", "7")
    assert code == 0 and "would free" in out and "nothing was removed" in out
    code, out, _ = cli("gc")
    assert code == 0 and "freed" in out and "main.default.assistant/2" in out and not location.exists()
    code, again, _ = cli("gc", as_json=True)
    assert code == 0 and again["freed_bytes"] == 0
    versions = {c["name"]: c for c in again["categories"]}
    assert set(versions) == {"model_versions", "runs", "logged_models", "model_cache", "environments"}
    assert cli("gc", "--cache-days", "-1")[0] == 2
    code, records, _ = cli("audit", "list", "--action", "GC", as_json=True)
    assert [r["details"]["freed_bytes"] for r in records] == [0, expected]
