"""A small JSON client for the Hangar server's ``/api/v1``: credentials, bearer token, errors.

The server's URL comes from an explicit argument, ``HANGAR_TRACKING_URI`` (when it is
``http(s)://``) or the credentials file; the token from ``HANGAR_TOKEN`` or the credentials file
that ``hangar auth login`` writes under ``HANGAR_HOME`` (mode 0600). A JSON error from the
server becomes the matching class of the one exception tree (by ``error_code``).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from hangar.config import Settings
from hangar.errors import HangarError, InvalidArgumentError, StoreUnavailableError

CREDENTIALS_FILE = "credentials.json"


def credentials_path(settings: Settings) -> Path:
    return Path(settings.home) / CREDENTIALS_FILE


def read_credentials(settings: Settings) -> dict:
    path = credentials_path(settings)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_credentials(settings: Settings, server: str, token: str) -> Path:
    """Store the server and token, readable only by the owner (written to a 0600 file, then renamed)."""
    path = credentials_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump({"server": server, "token": token}, f)
    os.replace(tmp, path)
    return path


def _errors_by_code() -> dict[str, type[HangarError]]:
    found: dict[str, type[HangarError]] = {}
    stack = [HangarError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.error_code, cls)
        stack.extend(cls.__subclasses__())
    return found


def server_url(settings: Settings, explicit: str | None = None) -> str:
    url = explicit or (settings.tracking_uri if (settings.tracking_uri or "").startswith(("http://", "https://"))
                       else None) or read_credentials(settings).get("server")
    if not url:
        raise InvalidArgumentError("No Hangar server named: pass --server URL, set HANGAR_TRACKING_URI=http://..., "
                                   "or run hangar auth login --server URL")
    if not url.startswith(("http://", "https://")):
        raise InvalidArgumentError(f"A server URL starts with http:// or https://, got {url!r}")
    return url.rstrip("/")


class ServerClient:
    def __init__(self, url: str, token: str | None, timeout: float = 30):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings | None = None, server: str | None = None) -> ServerClient:
        settings = settings or Settings.from_env()
        url = server_url(settings, server)
        creds = read_credentials(settings)
        token = settings.token or (creds.get("token") if creds.get("server", "").rstrip("/") == url else None)
        return cls(url, token)

    def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None):
        url = f"{self.url}/api/v1{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise _error_from(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise StoreUnavailableError(f"Cannot reach the Hangar server at {self.url}: {exc}") from None
        return json.loads(raw) if raw else {}

    @staticmethod
    def quote(value) -> str:
        return urllib.parse.quote(str(value), safe="")


def _error_from(exc: urllib.error.HTTPError) -> HangarError:
    try:
        body = json.loads(exc.read() or b"{}")
        code, message = body.get("error_code"), body.get("message")
    except ValueError:
        code, message = None, None
    cls = _errors_by_code().get(code or "", HangarError)
    err = cls(message or f"The server answered {exc.code}")
    if cls is HangarError:
        err.error_code, err.http_status = code or f"HTTP_{exc.code}", exc.code
    return err
