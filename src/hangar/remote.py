"""The HTTP client of the Hangar server's ``/api/v1``: credentials, bearer token, errors, keep-alive.

The server's URL comes from an explicit argument, ``HANGAR_TRACKING_URI`` (when it is
``http(s)://``) or the credentials file; the token from ``HANGAR_TOKEN`` or the credentials file
that ``hangar auth login`` writes under ``HANGAR_HOME`` (mode 0600). A JSON error from the
server becomes the matching class of the one exception tree (by ``error_code``). JSON calls to a
plain ``http://`` server go over kept-alive ``http.client`` connections (``remote_http``); artifact
streams, HTTPS and proxied servers over one ``httpx.Client``, made on first use.
"""

from __future__ import annotations

import json
import os
import urllib.parse
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


def is_server_uri(uri) -> bool:
    return isinstance(uri, str) and uri.startswith(("http://", "https://"))


def server_url(settings: Settings, explicit: str | None = None) -> str:
    url = explicit or (settings.tracking_uri if is_server_uri(settings.tracking_uri) else None) \
        or read_credentials(settings).get("server")
    if not url:
        raise InvalidArgumentError("No Hangar server named: pass --server URL, set HANGAR_TRACKING_URI=http://..., "
                                   "or run hangar auth login --server URL")
    if not is_server_uri(url):
        raise InvalidArgumentError(f"A server URL starts with http:// or https://, got {url!r}")
    return url.rstrip("/")


def token_for(settings: Settings, url: str) -> str | None:
    """``HANGAR_TOKEN``, else the credentials file's token when it was written for this server."""
    creds = read_credentials(settings)
    return settings.token or (creds.get("token") if creds.get("server", "").rstrip("/") == url.rstrip("/") else None)


class ServerClient:
    def __init__(self, url: str, token: str | None, timeout: float = 60):
        from hangar import remote_http

        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._http = None
        self._lean = remote_http.KeepAliveTransport(f"{self.url}/api/v1", self.headers, timeout) \
            if remote_http.usable_for(self.url) else None

    @property
    def http(self):
        """An ``httpx.Client`` (artifact streams, HTTPS, proxies), made on first use."""
        if self._http is None:
            import httpx

            self._http = httpx.Client(base_url=f"{self.url}/api/v1", headers=self.headers, timeout=self.timeout,
                                      limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=60))
        return self._http

    @classmethod
    def from_settings(cls, settings: Settings | None = None, server: str | None = None) -> ServerClient:
        settings = settings or Settings.from_env()
        url = server_url(settings, server)
        return cls(url, token_for(settings, url))

    def close(self) -> None:
        if self._lean is not None:
            self._lean.close()
        if self._http is not None:
            self._http.close()

    def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None,
                headers: dict | None = None):
        """The JSON answer; ``headers`` go with this request only (a serving process forwarding its caller's
        token). An error answer raises the matching HangarError."""
        params = {k: v for k, v in query.items() if v is not None} if query else None
        content = None if body is None else json.dumps(body).encode()
        if self._lean is not None:
            import http.client

            try:
                status, raw = self._lean.request(method, path, content, params, headers)
            except (OSError, http.client.HTTPException) as exc:
                raise StoreUnavailableError(f"Cannot reach the Hangar server at {self.url}: {exc}") from None
        else:
            extra = dict(headers or {})
            if content is not None:
                extra["Content-Type"] = "application/json"
            try:
                resp = self.http.request(method, path, content=content, params=params, headers=extra or None)
            except Exception as exc:
                raise self.unreachable(exc) from None
            status, raw = resp.status_code, resp.content
        if status >= 400:
            raise error_from(status, raw)
        return json.loads(raw) if raw else {}

    def unreachable(self, exc: Exception) -> HangarError:
        import httpx

        if isinstance(exc, httpx.HTTPError):
            return StoreUnavailableError(f"Cannot reach the Hangar server at {self.url}: {exc}")
        raise exc

    @staticmethod
    def quote(value) -> str:
        return urllib.parse.quote(str(value), safe="")


def error_from(status: int, raw: bytes) -> HangarError:
    try:
        body = json.loads(raw or b"{}")
        code, message = body.get("error_code"), body.get("message")
    except (ValueError, AttributeError):
        code, message = None, None
    cls = _errors_by_code().get(code or "", HangarError)
    err = cls(message or f"The server answered {status}")
    if cls is HangarError:
        err.error_code, err.http_status = code or f"HTTP_{status}", status
    return err
