"""Models served by any OpenAI-compatible API: chat, completions and embeddings.

A package of this flavor holds no weights, only where and how to call: the model name, the
task, the ``base_url`` and the *name* of the environment variable that holds the API key. The
key itself is read from that variable when the package is loaded and is never written to disk.

Precedence of request options, lowest first: the saved ``default_params``, the extra fields of
the payload (``{"messages": [...], "temperature": 0.2}``), then ``params``. A payload's
``model`` and ``stream`` fields are ignored: the package fixes the model, and ``predict`` /
``predict_stream`` decide streaming.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hangar.errors import (
    InvalidArgumentError,
    MissingCredentialError,
    ModelPackageError,
    SchemaMismatchError,
    StreamingNotSupportedError,
    UpstreamAPIError,
    require,
)
from hangar.models.common import describe_package
from hangar.models.environment import pin
from hangar.models.inputs import LLM_TASKS
from hangar.models.package import PackageWriter
from hangar.models.signature import ColSpec, ModelSignature, ParamSchema, ParamSpec, Schema

FLAVOR_NAME = "openai"
EXTRA = "openai"

CHAT = "llm/v1/chat"
COMPLETIONS = "llm/v1/completions"
EMBEDDINGS = "llm/v1/embeddings"

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
MAX_BATCH_CONCURRENCY = 8

_INPUT_FIELD = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input"}
_IGNORED_PAYLOAD_FIELDS = frozenset({"model", "stream", "stream_options"})
_RESERVED_PARAMS = frozenset({"model", "messages", "prompt", "input", "stream"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_GENERATION_PARAMS = (
    ParamSpec("temperature", "double"),
    ParamSpec("max_tokens", "long"),
    ParamSpec("top_p", "double"),
    ParamSpec("stop", "string", shape=(-1,)),
    ParamSpec("presence_penalty", "double"),
    ParamSpec("frequency_penalty", "double"),
    ParamSpec("seed", "long"),
)
_EMBEDDING_PARAMS = (ParamSpec("dimensions", "long"),)


# -- signature ---------------------------------------------------------------------------

def default_signature(task: str, default_params: dict | None = None) -> ModelSignature:
    """The signature a task gets when none is given.

    chat: ``messages`` (array of ``{role, content}``; ``content`` may be a string, a list of
    parts, or null for tool-call turns); completions: ``prompt`` (string); embeddings:
    ``input`` (a string or a list of strings, checked by the flavor). Params are the common
    OpenAI generation options (``dimensions`` for embeddings) plus every scalar key of
    ``default_params``; their signature defaults are None because ``default_params`` apply anyway.
    """
    if task == CHAT:
        message = {"type": "object", "properties": {
            "role": {"type": "string", "required": True},
            "content": {"type": "any", "required": False},
        }}
        inputs = Schema([ColSpec({"type": "array", "items": message}, name="messages")])
    elif task == COMPLETIONS:
        inputs = Schema([ColSpec({"type": "string"}, name="prompt")])
    else:
        inputs = Schema([ColSpec({"type": "any"}, name="input")])
    params = list(_EMBEDDING_PARAMS if task == EMBEDDINGS else _GENERATION_PARAMS)
    known = {p.name for p in params}
    for name, value in (default_params or {}).items():
        spec = _param_spec_for(name, value)
        if spec is not None and name not in known:
            params.append(spec)
    return ModelSignature(inputs=inputs, params=ParamSchema(params))


def _param_spec_for(name: str, value: Any) -> ParamSpec | None:
    """A default-None ParamSpec typed like ``value``, or None when params cannot hold it."""
    from hangar.models.infer import infer_type

    try:
        t = infer_type(value)
    except InvalidArgumentError:
        return None
    if t is None:
        return None
    if t["type"] == "array":
        item = t["items"]["type"]
        return ParamSpec(name, item, shape=(-1,)) if item not in ("any", "array", "object") else None
    if t["type"] in ("any", "object"):
        return None
    return ParamSpec(name, t["type"])


# -- saving ------------------------------------------------------------------------------

def save_model(path, model: str, task: str = CHAT, *, base_url: str | None = None,
               api_key_env: str | None = DEFAULT_API_KEY_ENV, system_prompt: str | None = None,
               default_params: dict | None = None, headers_env: dict[str, str] | None = None,
               timeout: float = 60, max_retries: int = 3, signature=None, input_example=None,
               pip_requirements=None, extra_pip_requirements=None, metadata=None):
    """Save a package that calls ``model`` on an OpenAI-compatible API at ``base_url``.

    ``api_key_env`` and the values of ``headers_env`` (header name -> variable name) are names
    of environment variables, read when the package is loaded; ``api_key_env=None`` sends no
    real key (a self-hosted server without auth). ``base_url=None`` means OpenAI's own API.
    """
    _check_save_args(model, task, base_url, api_key_env, system_prompt, default_params,
                     headers_env, timeout, max_retries)
    default_params = dict(default_params or {})
    if signature is None:
        signature = default_signature(task, default_params)
    if input_example is not None and isinstance(signature, ModelSignature) and signature.inputs is not None:
        from hangar.models.enforce import enforce_payload

        enforce_payload(input_example, signature.inputs)
    with PackageWriter(path) as w:
        describe_package(
            w, task=task, signature=signature, input_example=input_example,
            requirements=pin("openai", "httpx"), pip_requirements=pip_requirements,
            extra_pip_requirements=extra_pip_requirements, metadata=metadata,
        )
        w.add_flavor(
            FLAVOR_NAME, model=model, task=task, base_url=base_url, api_key_env=api_key_env,
            system_prompt=system_prompt, default_params=default_params,
            headers_env=dict(headers_env or {}), timeout=float(timeout), max_retries=int(max_retries),
            openai_version=_installed("openai"),
        )
        w.add_pyfunc(__name__, streamable=task != EMBEDDINGS, input_mode="payload")
    return w.path


def _installed(dist: str) -> str | None:
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _check_save_args(model, task, base_url, api_key_env, system_prompt, default_params,
                     headers_env, timeout, max_retries) -> None:
    if not isinstance(model, str) or not model.strip():
        raise InvalidArgumentError(f"model must be the API's model name (a non-empty string), got {model!r}")
    if task not in LLM_TASKS:
        raise InvalidArgumentError(f"Unknown task {task!r} for the openai flavor; use one of {', '.join(LLM_TASKS)}")
    if base_url is not None:
        parts = urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgumentError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL}, got {base_url!r}")
        if parts.username or parts.password:
            raise InvalidArgumentError(
                "base_url must not carry credentials (user:password@host): they would be saved in the "
                "package. Put the key in an environment variable and pass its name as api_key_env"
            )
    if api_key_env is not None:
        _check_env_name(api_key_env, "api_key_env")
    for header, env in (headers_env or {}).items():
        if not isinstance(header, str) or not header:
            raise InvalidArgumentError(f"headers_env keys must be header names, got {header!r}")
        _check_env_name(env, f"headers_env[{header!r}]")
    if system_prompt is not None and (task != CHAT or not isinstance(system_prompt, str)):
        raise InvalidArgumentError("system_prompt must be a string, and only chat models (task llm/v1/chat) take one")
    if default_params is not None:
        if not isinstance(default_params, dict):
            raise InvalidArgumentError(f"default_params must be a dict, got {type(default_params).__name__}")
        reserved = sorted(_RESERVED_PARAMS & set(default_params))
        if reserved:
            raise InvalidArgumentError(
                f"default_params cannot set {reserved}: the package fixes the model, the payload carries "
                "the input, and predict / predict_stream decide streaming"
            )
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise InvalidArgumentError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidArgumentError(f"max_retries must be an integer >= 0, got {max_retries!r}")


def _check_env_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise InvalidArgumentError(
            f"{where} must be the NAME of an environment variable (letters, digits, underscores), not "
            "its value; the value is read when the package is loaded and never saved"
        )


# -- loading -----------------------------------------------------------------------------

@dataclass(frozen=True)
class OpenAISettings:
    """What a package says about the API it calls (no secrets)."""

    model: str
    task: str
    base_url: str
    api_key_env: str | None = DEFAULT_API_KEY_ENV
    system_prompt: str | None = None
    default_params: dict = field(default_factory=dict)
    headers_env: dict = field(default_factory=dict)
    timeout: float = 60.0
    max_retries: int = 3

    @classmethod
    def from_flavor_conf(cls, conf: dict) -> OpenAISettings:
        try:
            return cls(
                model=conf["model"], task=conf["task"], base_url=conf.get("base_url") or DEFAULT_BASE_URL,
                api_key_env=conf.get("api_key_env"), system_prompt=conf.get("system_prompt"),
                default_params=dict(conf.get("default_params") or {}),
                headers_env=dict(conf.get("headers_env") or {}),
                timeout=float(conf.get("timeout", 60.0)), max_retries=int(conf.get("max_retries", 3)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelPackageError(f"The openai flavor config in MLmodel is malformed: {exc!r}") from None


class OpenAIModel:
    """A loaded package: the configured ``openai.OpenAI`` client plus the saved settings."""

    def __init__(self, settings: OpenAISettings, client: Any, secrets: tuple[str, ...] = ()):
        self.settings = settings
        self.client = client
        self._secrets = tuple(s for s in secrets if s and len(s) >= 8)  # short values would mangle text

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def task(self) -> str:
        return self.settings.task

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def unwrap(self) -> OpenAIModel:
        return self

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        return f"<OpenAIModel model={self.model!r} task={self.task} base_url={self.base_url!r}>"

    # -- the pyfunc view -----------------------------------------------------------------
    def predict(self, model_input: Any, params: dict | None = None) -> Any:
        """One OpenAI-shaped response dict per payload (a list for a list of payloads)."""
        if isinstance(model_input, list):
            for item in model_input:
                self._check_payload(item)
            if len(model_input) <= 1:
                return [self._predict_one(p, params) for p in model_input]
            with ThreadPoolExecutor(min(len(model_input), MAX_BATCH_CONCURRENCY)) as pool:
                return list(pool.map(lambda p: self._predict_one(p, params), model_input))
        self._check_payload(model_input)
        return self._predict_one(model_input, params)

    def predict_stream(self, model_input: Any, params: dict | None = None) -> Iterator[dict]:
        """Chunks ``{"delta": text}``; the last ones add ``finish_reason`` and ``usage``."""
        if self.task == EMBEDDINGS:
            raise StreamingNotSupportedError("An embeddings model does not stream; call predict instead")
        if not isinstance(model_input, dict):
            raise SchemaMismatchError("predict_stream takes one payload (a dict), not a batch; call predict for a list")
        self._check_payload(model_input)
        return self._stream(self._request_body(model_input, params))

    # -- requests ------------------------------------------------------------------------
    def _check_payload(self, payload: Any) -> None:
        key = _INPUT_FIELD[self.task]
        if not isinstance(payload, dict) or payload.get(key) is None:
            raise SchemaMismatchError(f"This {self.task} model takes a JSON object with the field '{key}'")
        if self.task == EMBEDDINGS and not _valid_embedding_input(payload[key]):
            raise SchemaMismatchError(
                "Input field 'input' expects a string or a non-empty list of strings, got "
                f"{type(payload[key]).__name__} {str(payload[key])[:60]!r}"
            )

    def _request_body(self, payload: dict, params: dict | None) -> dict:
        key = _INPUT_FIELD[self.task]
        body = dict(self.settings.default_params)
        body.update({k: v for k, v in payload.items() if k not in _IGNORED_PAYLOAD_FIELDS and k != key})
        body.update({k: v for k, v in (params or {}).items() if v is not None})
        value = payload[key]
        if self.task == CHAT and self.settings.system_prompt:
            value = [{"role": "system", "content": self.settings.system_prompt}, *value]
        body[key] = value
        return body

    def _create(self, body: dict, stream: bool) -> Any:
        body = dict(body)
        key = _INPUT_FIELD[self.task]
        kwargs: dict[str, Any] = {"model": self.model, key: body.pop(key)}
        stream_options = body.pop("stream_options", {"include_usage": True})
        if self.task == EMBEDDINGS:
            kwargs["encoding_format"] = body.pop("encoding_format", "float")
            return self.client.embeddings.create(**kwargs, extra_body=body)
        if stream:
            kwargs.update(stream=True)
            if stream_options is not None:
                kwargs["stream_options"] = stream_options
        api = self.client.chat.completions if self.task == CHAT else self.client.completions
        return api.create(**kwargs, extra_body=body)

    def _predict_one(self, payload: dict, params: dict | None) -> dict:
        openai = require("openai", EXTRA)
        error = None
        try:
            return self._create(self._request_body(payload, params), stream=False).to_dict()
        except openai.APIError as exc:
            error = self._upstream_error(exc)
        raise error  # outside the except block: no __context__ holding the request and its headers

    def _stream(self, body: dict) -> Iterator[dict]:
        openai = require("openai", EXTRA)
        error = None
        try:
            with self._create(body, stream=True) as chunks:
                for chunk in chunks:
                    yield from _stream_events(chunk, self.task)
        except openai.APIError as exc:
            error = self._upstream_error(exc)
        if error is not None:
            raise error

    # -- errors --------------------------------------------------------------------------
    def _upstream_error(self, exc: Exception) -> UpstreamAPIError:
        openai = require("openai", EXTRA)
        s = self.settings
        where = f"The API at {s.base_url} (model {s.model!r})"
        retries = f"after {s.max_retries} retr{'y' if s.max_retries == 1 else 'ies'}"
        status = getattr(exc, "status_code", None)
        if isinstance(exc, openai.APIStatusError):
            detail = _error_detail(exc)
            if status in (401, 403):
                source = f"the environment variable {s.api_key_env}" if s.api_key_env else "no API key (api_key_env=None)"
                message = (f"{where} rejected the credentials (HTTP {status}). The key came from {source}; "
                           "check that it holds a valid key for this base_url")
            elif status == 429:
                message = (f"{where} kept rate-limiting the request (HTTP 429) {retries}: {detail}. "
                           "Slow down, or save the model with a higher max_retries")
            elif status >= 500:
                message = f"{where} failed with HTTP {status} {retries}: {detail}"
            else:
                message = f"{where} refused the request (HTTP {status}): {detail}"
        elif isinstance(exc, openai.APITimeoutError):
            message = f"{where} did not answer within {s.timeout:g} s ({retries})"
        elif isinstance(exc, openai.APIConnectionError):
            message = f"Could not connect to {s.base_url} ({retries}): {exc.__cause__ or exc}"
        else:
            message = f"{where} answered with an error: {type(exc).__name__}: {exc}"
        error = UpstreamAPIError(self._redact(message))
        error.upstream_status = status
        return error

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _valid_embedding_input(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(v, str) for v in value):
        return True
    ints = lambda xs: all(isinstance(x, int) and not isinstance(x, bool) for x in xs)  # noqa: E731
    return ints(value) or all(isinstance(v, list) and v and ints(v) for v in value)


def _error_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    text = body.get("message") if isinstance(body, dict) else None
    text = str(text or getattr(exc, "message", "") or type(exc).__name__)
    return text if len(text) <= 500 else text[:497] + "..."


def _stream_events(chunk: Any, task: str) -> Iterator[dict]:
    for choice in chunk.choices or ():
        text = (choice.delta.content if task == CHAT and choice.delta is not None else getattr(choice, "text", None))
        extra = {"index": choice.index} if choice.index else {}
        if text:
            yield {"delta": text, **extra}
        if choice.finish_reason:
            yield {"delta": "", "finish_reason": choice.finish_reason, **extra}
    if getattr(chunk, "usage", None) is not None:
        yield {"delta": "", "usage": chunk.usage.to_dict()}


def _read_env(name: str, what: str) -> str:
    import os

    value = os.environ.get(name)
    if not value:
        raise MissingCredentialError(
            f"This model needs {what} in the environment variable {name}, which is not set. "
            f"Set {name} before loading the model (the key is never stored in the package)"
        )
    return value


def build_model(settings: OpenAISettings) -> OpenAIModel:
    """Read the key (and header values) from the environment and configure the client."""
    openai = require("openai", EXTRA)
    api_key = _read_env(settings.api_key_env, "its API key") if settings.api_key_env else "no-key"
    headers = {h: _read_env(env, f"the value of the {h!r} header") for h, env in settings.headers_env.items()}
    client = openai.OpenAI(
        api_key=api_key, base_url=settings.base_url, timeout=settings.timeout,
        max_retries=settings.max_retries, default_headers=headers or None,
    )
    secrets = (api_key,) if settings.api_key_env else ()
    return OpenAIModel(settings, client, secrets=secrets + tuple(headers.values()))


def _load_pyfunc(path: Path, manifest) -> OpenAIModel:
    conf = manifest.flavors.get(FLAVOR_NAME)
    if conf is None:
        raise ModelPackageError(f"The package at {path} has no {FLAVOR_NAME} flavor (it has {list(manifest.flavors)})")
    return build_model(OpenAISettings.from_flavor_conf(conf))


def load_model(path, manifest=None) -> OpenAIModel:
    """The configured client and settings of a local package."""
    from hangar.models.package import open_package

    manifest = manifest or open_package(path)
    return _load_pyfunc(Path(path), manifest)
