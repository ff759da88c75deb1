"""Row-wise ``/invocations`` requests: which ones may share a batch, how their rows merge into one
model input, and how one output is scattered back by row counts. Pure functions, no pandas.

Each parsed request is an ``Invocation`` whose ``kind`` says how its rows are held:

* ``split``   — ``dataframe_split``: a list of row lists; the columns are part of the key;
* ``records`` — ``dataframe_records`` / list-of-dict ``instances`` or ``inputs``: a list of row dicts;
* ``columns`` — ``inputs`` / ``instances`` as a dict of equal-length column lists;
* ``values``  — ``instances`` / ``inputs`` as a list of values (one column) or of row lists;
* ``None``    — anything else (CSV, a dict of scalars, a chat payload, no rows): it runs alone and
  its output is passed through as it is.

Requests share a batch only when their ``key`` (kind, columns, params) is equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hangar.errors import MalformedRequestError, ModelExecutionError
from hangar.serving import jsonio


@dataclass(slots=True)
class Invocation:
    data: Any
    params: dict | None
    kind: str | None = None
    key: Any = None
    rows: int = 1


def params_key(params: dict | None) -> Any:
    if not params:
        return params is not None  # None and {} are told apart: the model may see either
    try:
        return jsonio.std_dumps(dict(sorted(params.items())))
    except (TypeError, ValueError):
        return object()  # not comparable: runs in a batch of its own


def from_split(value: Any, params: dict | None) -> Invocation:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise MalformedRequestError("'dataframe_split' must be {'columns': [...], 'data': [[...], ...]}")
    rows = value["data"]
    columns = value.get("columns")
    if columns is None:
        width = len(rows[0]) if rows and isinstance(rows[0], list) else 1
        columns = list(range(width))
    if not isinstance(columns, list):
        raise MalformedRequestError("'dataframe_split.columns' must be a list of names")
    width = len(columns)
    for i, row in enumerate(rows):
        if type(row) is not list or len(row) != width:
            raise MalformedRequestError(
                f"'dataframe_split.data' row {i} must be a list of {width} values (one per column)"
            )
    try:
        names = tuple(columns)
        hash(names)
    except TypeError:
        raise MalformedRequestError("'dataframe_split.columns' must be a list of names") from None
    if not rows:
        return Invocation(merge_split(names, [rows]), params)
    return Invocation(rows, params, "split", ("split", names, params_key(params)), len(rows))


def from_records(rows: list, params: dict | None) -> Invocation:
    if not rows:
        return Invocation(rows, params)
    return Invocation(rows, params, "records", ("records", params_key(params)), len(rows))


def from_value(value: Any, params: dict | None) -> Invocation:
    """``instances`` / ``inputs``: rows if their shape says so, else passed through alone."""
    if isinstance(value, list) and value:
        first = value[0]
        if type(first) is dict:
            if all(type(r) is dict for r in value):
                return from_records(value, params)
            return Invocation(value, params)
        shape = "lists" if type(first) is list else "scalars"
        return Invocation(value, params, "values", ("values", shape, params_key(params)), len(value))
    if isinstance(value, dict) and value:
        lengths = {len(v) if type(v) is list else -1 for v in value.values()}
        if len(lengths) == 1 and (n := lengths.pop()) > 0:
            try:
                names = tuple(value)
            except TypeError:  # pragma: no cover - JSON keys are strings
                return Invocation(value, params)
            return Invocation(value, params, "columns", ("columns", names, params_key(params)), n)
    return Invocation(value, params)


def merge_split(names: tuple, parts: list[list]) -> dict:
    rows = parts[0] if len(parts) == 1 else [r for part in parts for r in part]
    return {name: [r[i] for r in rows] for i, name in enumerate(names)}


def merge(batch: list[Invocation]) -> Any:
    """One model input holding every request's rows, in order."""
    first = batch[0]
    kind = first.kind
    if kind is None:
        return first.data
    if kind == "split":
        return merge_split(first.key[1], [inv.data for inv in batch])
    if kind == "columns":
        if len(batch) == 1:
            return first.data
        return {name: [v for inv in batch for v in inv.data[name]] for name in first.key[1]}
    if len(batch) == 1:
        return first.data
    return [r for inv in batch for r in inv.data]


def scatter(outputs: Any, counts: list[int]) -> list:
    """``outputs`` (already JSON-able) cut into one list per request; one output per input row."""
    total = sum(counts)
    if not isinstance(outputs, list) or len(outputs) != total:
        got = f"{len(outputs)} outputs" if isinstance(outputs, list) else f"a {type(outputs).__name__}"
        raise ModelExecutionError(
            f"The model returned {got} for {total} input rows; batched serving needs one output per row "
            "(serve this model with --no-batching if its output is not row-wise)"
        )
    if len(counts) == 1:
        return [outputs]
    parts, start = [], 0
    for n in counts:
        parts.append(outputs[start:start + n])
        start += n
    return parts
