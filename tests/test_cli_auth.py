"""``hangar auth | principals | grants`` against a real server on loopback."""

from __future__ import annotations

import json
import stat

import pytest
from server_fixtures import start_hub

from hangar.cli.main import main


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "cli-home"))
    monkeypatch.delenv("HANGAR_TOKEN", raising=False)
    monkeypatch.delenv("HANGAR_TRACKING_URI", raising=False)
    server, hub = start_hub(f"sqlite:///{tmp_path / 'hangar.db'}", tmp_path)
    with server:
        yield hub


def run(capsys, *args) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_login_tokens_principals_and_grants(hub, capsys, tmp_path):
    token_file = hub.home / "server" / "bootstrap-admin-token"
    code, out, err = run(capsys, "auth", "login", "--server", hub.url, "--token-file", str(token_file))
    assert code == 0 and "logged in" in out and "as admin" in out
    creds = tmp_path / "cli-home" / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600 and hub.admin_token not in out + err

    code, out, _ = run(capsys, "auth", "whoami", "--json")
    assert code == 0 and json.loads(out)["name"] == "admin"
    for args in [("principals", "create", "alice"), ("principals", "create", "ml-team", "--kind", "group"),
                 ("principals", "add-member", "ml-team", "alice"), ("catalogs", "--help")]:
        assert run(capsys, *args)[0] == 0, args
    code, out, _ = run(capsys, "principals", "list", "--json")
    assert {p["name"]: p["kind"] for p in json.loads(out)} == {"admin": "user", "alice": "user", "ml-team": "group"}
    code, out, _ = run(capsys, "principals", "list")
    assert "ml-team" in out and "group" in out

    code, out, _ = run(capsys, "grants", "add", "metastore", "metastore", "ml-team", "use_catalog")
    assert code == 0 and "granted USE_CATALOG" in out
    code, out, _ = run(capsys, "grants", "list", "metastore", "metastore", "--json")
    assert {(g["principal"], g["privilege"]) for g in json.loads(out)} == {("admin", "ALL_PRIVILEGES"),
                                                                          ("ml-team", "USE_CATALOG")}
    code, _, err = run(capsys, "grants", "add", "catalog", "main", "alice", "READ")
    assert code == 1 and err.startswith("Error [INVALID_PARAMETER_VALUE]") and "Traceback" not in err
    assert run(capsys, "grants", "remove", "metastore", "metastore", "ml-team", "USE_CATALOG")[0] == 0
    code, _, err = run(capsys, "grants", "remove", "metastore", "metastore", "ml-team", "USE_CATALOG")
    assert code == 3 and "Error [RESOURCE_DOES_NOT_EXIST]" in err

    code, out, _ = run(capsys, "auth", "token", "create", "--for", "alice", "--name", "ci", "--json")
    alice_token = json.loads(out)["token"]
    assert alice_token.startswith("hgr_")
    code, out, _ = run(capsys, "auth", "token", "create", "--name", "mine")
    assert code == 0 and "hgr_" in out
    code, out, _ = run(capsys, "auth", "token", "list", "--json")
    mine = [t for t in json.loads(out) if t["name"] == "mine"][0]
    assert "hgr_" not in out
    assert run(capsys, "auth", "token", "revoke", mine["id"])[0] == 0
    code, out, _ = run(capsys, "auth", "token", "list", "--json")
    assert [t["revoked_at"] for t in json.loads(out) if t["id"] == mine["id"]] != [None]
    assert run(capsys, "principals", "remove-member", "ml-team", "alice")[0] == 0


def test_a_principal_without_privileges_gets_errors_not_tracebacks(hub, capsys, monkeypatch):
    token = hub.user("eve")
    monkeypatch.setenv("HANGAR_TOKEN", token)
    code, _, err = run(capsys, "principals", "create", "mallory", "--server", hub.url)
    assert code == 1 and err.startswith("Error [PERMISSION_DENIED]")
    monkeypatch.setenv("HANGAR_TOKEN", "hgr_wrong")
    code, _, err = run(capsys, "auth", "whoami", "--server", hub.url)
    assert code == 1 and err.startswith("Error [UNAUTHENTICATED]")
    monkeypatch.delenv("HANGAR_TOKEN")
    code, _, err = run(capsys, "auth", "whoami")
    assert code == 1 and "No Hangar server named" in err


@pytest.mark.parametrize("given, expected", [("1KiB", 1024), ("2GB", 2 * 1000**3), ("4096", 4096), ("1.5mib", 1572864)])
def test_server_max_upload_reaches_the_config(given, expected, capsys, monkeypatch, tmp_path):
    import hangar.server.run

    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    seen = []
    monkeypatch.setattr(hangar.server.run, "run", seen.append)
    code, _, _ = run(capsys, "server", "--max-upload", given)
    assert code == 0 and seen[0].max_upload_bytes == expected


@pytest.mark.parametrize("given", ["lots", "0", "5 parsecs", "-1GB"])
def test_server_max_upload_refuses_what_is_not_a_size(given, capsys, monkeypatch, tmp_path):
    import hangar.server.run

    monkeypatch.setenv("HANGAR_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(hangar.server.run, "run", lambda config: pytest.fail("the server started"))
    code, _, err = run(capsys, "server", "--max-upload", given)
    assert code == 2 and "is not a size" in err and "20GiB" in err
