"""An endpoint's configuration: what it serves, how traffic splits, and its limits.

Written by people as YAML (``hangar endpoints create NAME --config endpoint.yaml``)::

    served_entities:
      - model: models:/main.support.assistant@champion
        weight: 90
      - model: models:/main.support.assistant@challenger
        weight: 10
        max_batch_size: 16
        threads: 2              # predict calls at once (default: 1 batched, 40 unbatched)
        inline_max_ms: 1        # a quick model runs on the event loop at low load (0: never)
    alias_poll_seconds: 5
    limits: {rate_per_minute: 600, max_payload_bytes: 16777216, request_timeout_s: 30, max_queue: 512}
    rate_limit_redis: redis://127.0.0.1:6379/0
    secrets:
      OPENAI_API_KEY: {env: SUPPORT_OPENAI_KEY}
      OTHER_KEY: {file: /run/secrets/other}
    inference_table: {parquet: /var/hangar/inference/support}

Validation names the field and the fix. Secrets are *references* (an environment variable or a
file path), never values: the stored config cannot leak a key.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from hangar.errors import InvalidArgumentError

ENDPOINT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENTITY_KEYS = {"name", "model", "weight", "max_batch_size", "max_wait_ms", "batching", "threads", "inline_max_ms"}
_TOP_KEYS = {"served_entities", "alias_poll_seconds", "limits", "rate_limit_redis", "secrets", "inference_table"}
_LIMIT_KEYS = {"rate_per_minute", "max_payload_bytes", "request_timeout_s", "max_queue"}
_TABLE_KEYS = {"parquet", "sql", "queue_size", "flush_rows", "flush_seconds"}


@dataclass(frozen=True)
class ServedEntity:
    name: str
    model: str               # a model URI: models:/name@alias, models:/name/N, or a path
    weight: float = 100.0
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    batching: bool = True
    threads: int = 0          # predict calls at once for this entity; 0: automatic
    inline_max_ms: float = 1.0  # see ServingSettings.inline_max_ms

    @property
    def follows_alias(self) -> bool:
        return self.model.startswith("models:/") and "@" in self.model


@dataclass(frozen=True)
class Limits:
    rate_per_minute: int | None = None     # per caller; None: no limit
    max_payload_bytes: int = 16 * 1024 * 1024
    request_timeout_s: float = 30.0
    max_queue: int = 512


@dataclass(frozen=True)
class InferenceTableConfig:
    parquet: str | None = None               # a folder of Parquet files
    sql: str | None = None                   # a SQLAlchemy URL with #table
    queue_size: int = 10_000
    flush_rows: int = 1_000
    flush_seconds: float = 2.0


@dataclass(frozen=True)
class EndpointConfig:
    served_entities: tuple[ServedEntity, ...]
    alias_poll_seconds: float = 5.0
    limits: Limits = field(default_factory=Limits)
    rate_limit_redis: str | None = None
    secrets: dict[str, dict] = field(default_factory=dict)   # NAME -> {"env": VAR} | {"file": PATH}
    inference_table: InferenceTableConfig | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["served_entities"] = [asdict(e) for e in self.served_entities]
        if self.inference_table is None:
            data.pop("inference_table")
        return data


def _fail(where: str, problem: str) -> None:
    raise InvalidArgumentError(f"Endpoint config: {where} {problem}")


def _number(value: Any, where: str, *, minimum: float, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value < minimum:
        kind = "an integer" if integer else "a number"
        _fail(where, f"must be {kind} >= {minimum}, got {value!r}")
    return value


def _check_keys(data: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        _fail(where, f"has unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def check_endpoint_name(name: str) -> str:
    if not isinstance(name, str) or not ENDPOINT_NAME.match(name):
        raise InvalidArgumentError(f"Endpoint name {name!r} must be 1-63 lower-case letters, digits, '-' or '_', "
                                   "starting with a letter or digit")
    return name


def _entity(data: Any, index: int, seen: set) -> ServedEntity:
    where = f"served_entities[{index}]"
    if not isinstance(data, dict):
        _fail(where, f"must be a mapping with at least 'model', got {type(data).__name__}")
    _check_keys(data, _ENTITY_KEYS, where)
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        _fail(f"{where}.model", "must be a model URI such as models:/main.default.assistant@champion")
    if model.startswith("models:/"):
        from hangar.uri import parse_model_uri

        try:
            parse_model_uri(model)
        except InvalidArgumentError as exc:
            _fail(f"{where}.model", f"is not a valid model URI: {exc.message}")
    name = data.get("name") or _default_name(model, index)
    if not isinstance(name, str) or not ENDPOINT_NAME.match(name):
        _fail(f"{where}.name", f"must be lower-case letters, digits, '-' or '_', got {name!r}")
    if name in seen:
        _fail(f"{where}.name", f"{name!r} is used twice; give each served entity its own name")
    seen.add(name)
    batching = data.get("batching", True)
    if not isinstance(batching, bool):
        _fail(f"{where}.batching", f"must be true or false, got {batching!r}")
    return ServedEntity(
        name=name, model=model.strip(),
        weight=float(_number(data.get("weight", 100), f"{where}.weight", minimum=0)),
        max_batch_size=_number(data.get("max_batch_size", 64), f"{where}.max_batch_size", minimum=1, integer=True),
        max_wait_ms=float(_number(data.get("max_wait_ms", 5), f"{where}.max_wait_ms", minimum=0)),
        batching=batching,
        threads=_number(data.get("threads", 0), f"{where}.threads", minimum=0, integer=True),
        inline_max_ms=float(_number(data.get("inline_max_ms", 1), f"{where}.inline_max_ms", minimum=0)),
    )


def _default_name(model: str, index: int) -> str:
    tail = model.rsplit("@", 1)[1] if "@" in model else f"entity-{index}"
    tail = re.sub(r"[^a-z0-9_-]", "-", tail.lower()).strip("-") or f"entity-{index}"
    return tail[:63]


def parse_endpoint_config(data: Any) -> EndpointConfig:
    """Validate a config mapping (from YAML or JSON) into an :class:`EndpointConfig`."""
    if not isinstance(data, dict):
        _fail("", f"must be a mapping with 'served_entities', got {type(data).__name__}")
    _check_keys(data, _TOP_KEYS, "(top level)")
    entities = data.get("served_entities")
    if not isinstance(entities, list) or not entities:
        _fail("served_entities", "must be a non-empty list of {model: URI, weight: N}")
    seen: set = set()
    parsed = tuple(_entity(e, i, seen) for i, e in enumerate(entities))
    if sum(e.weight for e in parsed) <= 0:
        _fail("served_entities", "need a positive weight on at least one entity")
    limits_data = data.get("limits") or {}
    if not isinstance(limits_data, dict):
        _fail("limits", "must be a mapping")
    _check_keys(limits_data, _LIMIT_KEYS, "limits")
    rate = limits_data.get("rate_per_minute")
    limits = Limits(
        rate_per_minute=None if rate is None else _number(rate, "limits.rate_per_minute", minimum=1, integer=True),
        max_payload_bytes=_number(limits_data.get("max_payload_bytes", Limits.max_payload_bytes),
                                  "limits.max_payload_bytes", minimum=1, integer=True),
        request_timeout_s=float(_number(limits_data.get("request_timeout_s", Limits.request_timeout_s),
                                        "limits.request_timeout_s", minimum=0.001)),
        max_queue=_number(limits_data.get("max_queue", Limits.max_queue), "limits.max_queue", minimum=1, integer=True),
    )
    redis_url = data.get("rate_limit_redis")
    if redis_url is not None and (not isinstance(redis_url, str) or not redis_url.startswith(("redis://", "rediss://"))):
        _fail("rate_limit_redis", f"must be a redis:// URL, got {redis_url!r}")
    return EndpointConfig(
        served_entities=parsed,
        alias_poll_seconds=float(_number(data.get("alias_poll_seconds", 5), "alias_poll_seconds", minimum=0.05)),
        limits=limits, rate_limit_redis=redis_url, secrets=_secrets(data.get("secrets") or {}),
        inference_table=_table(data.get("inference_table")),
    )


def _secrets(data: Any) -> dict[str, dict]:
    if not isinstance(data, dict):
        _fail("secrets", "must map a variable name to {env: VAR} or {file: PATH}")
    out = {}
    for name, ref in data.items():
        where = f"secrets.{name}"
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            _fail(where, "must be named like an environment variable (letters, digits, _)")
        if isinstance(ref, str):
            _fail(where, "must be a reference {env: VAR} or {file: PATH}, never the secret itself")
        if not isinstance(ref, dict) or len(ref) != 1 or next(iter(ref)) not in ("env", "file"):
            _fail(where, "must be exactly one of {env: VAR} or {file: PATH}")
        kind, value = next(iter(ref.items()))
        if not isinstance(value, str) or not value:
            _fail(where, f"{kind} must be a non-empty string")
        if kind == "env" and not _ENV_NAME.match(value):
            _fail(where, f"env must name an environment variable, got {value!r}")
        out[name] = {kind: value}
    return out


def _table(data: Any) -> InferenceTableConfig | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        _fail("inference_table", "must be a mapping with 'parquet: FOLDER' or 'sql: URL#table'")
    _check_keys(data, _TABLE_KEYS, "inference_table")
    if bool(data.get("parquet")) == bool(data.get("sql")):
        _fail("inference_table", "needs exactly one of 'parquet: FOLDER' or 'sql: URL#table'")
    sql = data.get("sql")
    if sql is not None and (not isinstance(sql, str) or "#" not in sql):
        _fail("inference_table.sql", "must be a SQLAlchemy URL followed by #table_name")
    return InferenceTableConfig(
        parquet=data.get("parquet"), sql=sql,
        queue_size=_number(data.get("queue_size", 10_000), "inference_table.queue_size", minimum=1, integer=True),
        flush_rows=_number(data.get("flush_rows", 1_000), "inference_table.flush_rows", minimum=1, integer=True),
        flush_seconds=float(_number(data.get("flush_seconds", 2.0), "inference_table.flush_seconds", minimum=0.01)),
    )


def load_config_file(path: str) -> EndpointConfig:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise InvalidArgumentError(f"Cannot read the endpoint config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(f"The endpoint config {path} is not valid YAML: {exc}") from None
    return parse_endpoint_config(data)


def from_stored(data: dict) -> EndpointConfig:
    return parse_endpoint_config(data)
