"""The batch scoring core: one Arrow chunk in, the same rows plus prediction, version and error out.

Pure over a loaded pyfunc model: every engine (local processes, Ray actors, Spark tasks) calls
``ChunkScorer.score`` and nothing else, so all of them produce the same columns. A chunk is
predicted in one call; when that call fails, the chunk is split in halves until the failing rows
are alone, so one bad row costs O(log n) extra calls and fails only itself.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from hangar.errors import BatchJobError, HangarError, ModelExecutionError
from hangar.models.llm_payloads import response_text

VERSION_COLUMN = "model_version"
ERROR_COLUMN = "error"
_LLM_TASKS = ("llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings")
_PAYLOAD_KEY = {"llm/v1/chat": "messages", "llm/v1/completions": "prompt", "llm/v1/embeddings": "input"}


@dataclass
class ChunkStats:
    rows: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_error: str | None = None

    def add(self, other: ChunkStats) -> None:
        self.rows += other.rows
        self.failed += other.failed
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.first_error = self.first_error or other.first_error

    def to_dict(self) -> dict:
        return {"rows": self.rows, "failed": self.failed, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "first_error": self.first_error}

    @classmethod
    def from_dict(cls, data: dict) -> ChunkStats:
        return cls(**{k: data.get(k, 0 if k != "first_error" else None) for k in cls.__dataclass_fields__})


@dataclass
class ScoringSpec:
    """What to feed the model and what to keep; plain data so it can travel to workers."""

    columns: list[str] | None = None          # input columns given to the model (default: all)
    keep_columns: list[str] | None = None     # input columns copied to the output (default: all)
    output_column: str = "prediction"
    params: dict | None = None
    model_version: str = ""                   # written in every row's version column
    fail_fast: bool = False
    concurrency: int | None = None            # rows in flight at once for payload (LLM / API) models


class RowFailure(BatchJobError):
    """Raised under ``fail_fast`` for the first row the model fails on."""


class ChunkScorer:
    def __init__(self, model, spec: ScoringSpec):
        self.model = model
        self.spec = spec
        self.task = getattr(model, "task", None)
        self.input_mode = getattr(model, "input_mode", "dataframe")
        self._lock = threading.Lock()  # token counts are added from several threads
        self._versions: dict[int, Any] = {}  # the version column by chunk length (chunks share lengths)
        self._chunk_error: Exception | None = None

    # -- public ------------------------------------------------------------------------------
    def score(self, batch) -> tuple[Any, ChunkStats]:
        """``(pyarrow.Table, stats)`` for one ``pyarrow.RecordBatch`` or ``Table``."""
        import pyarrow as pa

        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        n = table.num_rows
        missing = [c for c in (self.spec.columns or []) + (self.spec.keep_columns or []) if c not in table.column_names]
        if missing:
            raise BatchJobError(f"The input has no column {missing[0]!r}; it has {table.column_names}. "
                                "Check --columns / --keep-columns")
        kept = table.select(self.spec.keep_columns) if self.spec.keep_columns is not None else table
        taken = set(kept.column_names)
        for name in (self.spec.output_column, VERSION_COLUMN, ERROR_COLUMN):
            if name in taken:
                raise BatchJobError(f"The input already has a column {name!r}; choose another --output-column "
                                    "or leave that column out with --keep-columns")
        model_input = table.select(self.spec.columns) if self.spec.columns else table
        stats = ChunkStats(rows=n)
        column = self._whole_chunk(model_input, n) if n and self.input_mode != "payload" else None
        if column is not None:  # the common case: one predict call, columns straight from its arrays
            error_column = pa.nulls(n, pa.string())
        else:
            predictions: list[Any] = [None] * n
            errors: list[str | None] = [None] * n
            if self.input_mode == "payload":
                self._predict_rows(model_input, predictions, errors, stats)
            elif n and self._chunk_error is not None:  # the whole chunk failed: find the rows
                self._split(model_input, 0, n, predictions, errors, stats, self._chunk_error)
            elif n:
                self._predict_range(model_input, 0, n, predictions, errors, stats)
            column = _to_arrow(predictions)
            error_column = pa.array(errors, pa.string())
            stats.failed = sum(e is not None for e in errors)
        out = kept.append_column(self.spec.output_column, column)
        out = out.append_column(VERSION_COLUMN, self._version_column(n))
        return out.append_column(ERROR_COLUMN, error_column), stats

    def _whole_chunk(self, table, n: int):
        """The prediction column from one call on the whole chunk, or None when that call failed
        (or returned something that needs the general path)."""
        self._chunk_error = None
        if self.task in _LLM_TASKS:
            return None
        try:
            result = self._call(table)
            return _column_of(result, n)
        except Exception as exc:  # noqa: BLE001 - the general path finds the failing rows
            self._chunk_error = exc
            return None

    def _version_column(self, n: int):
        import pyarrow as pa

        cached = self._versions.get(n)
        if cached is None:
            if len(self._versions) > 4:
                self._versions.clear()
            cached = self._versions[n] = pa.array([self.spec.model_version] * n, pa.string())
        return cached

    # -- internals -----------------------------------------------------------------------------
    def _predict_rows(self, table, predictions, errors, stats) -> None:
        """Payload models (chat, completions, embeddings, API calls) one row per call, up to
        ``concurrency`` at once: a failed row is never sent again because a neighbour failed."""
        payloads = self._payloads(table)
        width = self.spec.concurrency or _default_concurrency(self.model)

        def one(i: int):
            try:
                return i, self._values(self.model.predict([payloads[i]], params=self.spec.params), 1, stats)[0], None
            except Exception as exc:  # noqa: BLE001 - recorded per row
                return i, None, exc

        if width <= 1 or len(payloads) <= 1:
            results = map(one, range(len(payloads)))
        else:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(min(width, len(payloads)), thread_name_prefix="hangar-batch")
            results = pool.map(one, range(len(payloads)))
        try:
            for i, value, exc in results:
                if exc is None:
                    predictions[i] = value
                    continue
                message = _message(exc)
                if self.spec.fail_fast:
                    raise RowFailure(f"The model failed on input row {i} of this chunk: {message}") from exc
                errors[i] = message
                stats.first_error = stats.first_error or message
        finally:
            if width > 1 and len(payloads) > 1:
                pool.shutdown(wait=True, cancel_futures=True)

    def _predict_range(self, table, start: int, stop: int, predictions, errors, stats) -> None:
        try:
            values = self._predict(table.slice(start, stop - start), stats)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded per row
            self._split(table, start, stop, predictions, errors, stats, exc)
            return
        predictions[start:stop] = values

    def _split(self, table, start: int, stop: int, predictions, errors, stats, exc) -> None:
        """Rows ``[start, stop)`` failed together (with ``exc``): a single row keeps the error,
        a range is tried again in halves."""
        if stop - start == 1:
            message = _message(exc)
            if self.spec.fail_fast:
                raise RowFailure(f"The model failed on input row {start} of this chunk: {message}") from exc
            errors[start] = message
            stats.first_error = stats.first_error or message
            return
        middle = (start + stop) // 2
        self._predict_range(table, start, middle, predictions, errors, stats)
        self._predict_range(table, middle, stop, predictions, errors, stats)

    def _call(self, table) -> Any:
        if self.input_mode == "list":
            if table.num_columns == 1:
                return self.model.predict(table.column(0).to_pylist(), params=self.spec.params)
            return self.model.predict(table.to_pylist(), params=self.spec.params)
        return self.model.predict(table.to_pandas(), params=self.spec.params)

    def _predict(self, table, stats: ChunkStats) -> list:
        return self._values(self._call(table), table.num_rows, stats)

    def _values(self, result: Any, n: int, stats: ChunkStats) -> list:
        values = _as_list(result)
        if len(values) != n:
            raise ModelExecutionError(f"The model returned {len(values)} predictions for {n} input rows")
        if self.task in _LLM_TASKS:
            values = [self._llm_value(v, stats) for v in values]
        return values

    def _payloads(self, table) -> list:
        """Rows as the payloads an LLM model takes: a row with the payload's own field is used as
        is; a single text column is wrapped (chat → messages, completions → prompt, ...)."""
        key = _PAYLOAD_KEY.get(self.task)
        rows = table.to_pylist()
        if key is None or key in table.column_names:
            return rows
        if table.num_columns == 1:
            from hangar.models.adapt import to_model_input

            return [to_model_input(next(iter(row.values())), self.model) for row in rows]
        return rows

    def _llm_value(self, value: Any, stats: ChunkStats) -> Any:
        if not isinstance(value, dict):
            return value
        usage = value.get("usage") or {}
        with self._lock:
            stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            stats.completion_tokens += int(usage.get("completion_tokens") or 0)
        if self.task == "llm/v1/embeddings":
            data = value.get("data") or []
            return data[0].get("embedding") if len(data) == 1 else [d.get("embedding") for d in data]
        return response_text(value)


def _default_concurrency(model) -> int:
    """Models that wait on a remote API (the ``openai`` flavor) overlap requests; local models
    run one row at a time (they use every core already)."""
    flavors = getattr(getattr(model, "metadata", None), "flavors", None) or {}
    return 8 if "openai" in flavors else 1


def _message(exc: Exception) -> str:
    if isinstance(exc, HangarError):
        return f"{exc.error_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _as_list(result: Any) -> list:
    if isinstance(result, list):
        return result
    module = type(result).__module__ or ""
    if module.startswith("pandas"):
        if hasattr(result, "columns"):  # a DataFrame: one column is that column, several a dict per row
            if len(result.columns) == 1:
                return result.iloc[:, 0].tolist()
            return result.to_dict(orient="records")
        return result.tolist()
    if hasattr(result, "tolist"):
        return result.tolist()
    if isinstance(result, (tuple, range)):
        return list(result)
    if isinstance(result, dict):  # a dict of columns
        columns = list(result.values())
        if columns and all(isinstance(c, list) for c in columns):
            return [dict(zip(result, row)) for row in zip(*columns)]
    raise ModelExecutionError(f"The model returned {type(result).__name__}; batch scoring needs one value per row "
                              "(a list, an array, a Series or a DataFrame)")


def _column_of(result: Any, n: int):
    """An Arrow column straight from a model's array-like output (no Python list in between)."""
    import pyarrow as pa

    module = type(result).__module__ or ""
    if module.startswith("pandas") and hasattr(result, "columns"):
        if len(result.columns) != 1:
            return _checked(_to_arrow(_as_list(result)), n)
        result = result.iloc[:, 0]
        module = "pandas"
    if module.startswith("pandas"):
        try:
            return _checked(pa.Array.from_pandas(result), n)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return _checked(_to_arrow(result.tolist()), n)
    if module.startswith("numpy") and getattr(result, "ndim", 0) == 1 and result.dtype.kind in "biuf":
        return _checked(pa.array(result), n)
    return _checked(_to_arrow(_as_list(result)), n)


def _checked(column, n: int):
    if len(column) != n:
        raise ModelExecutionError(f"The model returned {len(column)} predictions for {n} input rows")
    return column


def _to_arrow(values: list):
    """An Arrow column for the predictions; values Arrow cannot type consistently become JSON text."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError):
        return pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string())
