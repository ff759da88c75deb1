"""Check inputs and params against a signature, with safe coercions and precise errors."""

from __future__ import annotations

import datetime as _dt
import functools
from typing import Any

from hangar.errors import SchemaMismatchError, UnknownParamError
from hangar.models.inputs import to_dataframe
from hangar.models.signature import ParamSchema, Schema, describe_type

_INT_TYPES = ("long", "integer")
_FLOAT_TYPES = ("double", "float")


def _shown(value: Any) -> str:
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_value(value: Any, spec: dict, where: str) -> Any:
    """Return ``value`` coerced to ``spec`` or raise SchemaMismatchError naming ``where``."""
    kind = spec["type"]
    if kind == "any":
        return value
    if kind == "string":
        if isinstance(value, str):
            return value
    elif kind in _INT_TYPES:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if _is_numpy_int(value):
            return int(value)
    elif kind in _FLOAT_TYPES:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if _is_numpy_number(value):
            return float(value)
    elif kind == "boolean":
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            return bool(value)
    elif kind == "binary":
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
    elif kind == "datetime":
        if isinstance(value, (_dt.datetime, _dt.date)) or type(value).__name__ in ("Timestamp", "datetime64"):
            return value
        if isinstance(value, str):
            try:
                return _dt.datetime.fromisoformat(value)
            except ValueError:
                pass
    elif kind == "array":
        if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
            return [check_value(v, spec["items"], f"{where}[{i}]") for i, v in enumerate(value)]
    elif kind == "object":
        if isinstance(value, dict):
            out = dict(value)
            for name, sub in spec["properties"].items():
                if name not in value or value[name] is None:
                    if sub.get("required", True):
                        raise SchemaMismatchError(
                            f"{where} is missing the required field '{name}' ({describe_type(sub)}); "
                            f"it has fields {sorted(value)}"
                        )
                    continue
                out[name] = check_value(value[name], sub, f"{where}.{name}")
            return out
    raise SchemaMismatchError(
        f"{where} expects {describe_type(spec)} but got {type(value).__name__} {_shown(value)}"
    )


def _is_numpy_int(value) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__.startswith(("int", "uint"))


def _is_numpy_number(value) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__.startswith(("int", "uint", "float"))


def _coerce_column(series, col, where: str):
    import numpy as np
    import pandas as pd

    kind = col.type["type"]
    missing = series.isna()
    if missing.any():
        if col.required:
            row = int(np.flatnonzero(missing.to_numpy())[0])
            raise SchemaMismatchError(
                f"{where} is required ({describe_type(col.type)}) but row {row} has no value"
            )
    dtype_kind = series.dtype.kind
    if kind in _INT_TYPES and dtype_kind in "iu":
        return series.astype("int64") if dtype_kind == "u" or series.dtype != np.int64 else series
    if kind in _FLOAT_TYPES and dtype_kind in "iuf":
        return series.astype("float64")
    if kind == "boolean" and dtype_kind == "b":
        return series
    if kind == "datetime" and dtype_kind == "M":
        return series
    if kind == "datetime" and dtype_kind == "O":
        try:
            return pd.to_datetime(series)
        except (ValueError, TypeError) as exc:
            raise SchemaMismatchError(f"{where} expects datetime values: {exc}") from None
    if kind in ("string", "binary", "array", "object", "any", "long", "integer", "double", "float", "boolean"):
        if dtype_kind not in "OUS" and kind in ("string", "binary", "array", "object"):
            raise SchemaMismatchError(
                f"{where} expects {describe_type(col.type)} but got a column of {series.dtype} "
                f"(first value {_shown(series.iloc[0]) if len(series) else 'none'})"
            )
        values = series.tolist()
        out = []
        for i, v in enumerate(values):
            if v is None or (isinstance(v, float) and v != v):
                out.append(None)
                continue
            out.append(check_value(v, col.type, f"{where}, row {i}"))
        if kind in _INT_TYPES and all(v is not None for v in out):
            return pd.Series(out, index=series.index, dtype="int64", name=series.name)
        if kind in _FLOAT_TYPES:
            return pd.Series(out, index=series.index, dtype="float64", name=series.name)
        if kind == "boolean" and all(v is not None for v in out):
            return pd.Series(out, index=series.index, dtype="bool", name=series.name)
        return pd.Series(out, index=series.index, dtype="object", name=series.name)
    raise SchemaMismatchError(f"{where} expects {describe_type(col.type)} but got a column of {series.dtype}")


_PLAIN_DTYPES = {"string": "object", "long": "int64", "integer": "int64", "double": "float64", "float": "float64",
                 "boolean": "bool"}
_INT64 = (-(2**63), 2**63)


def _plain_column(values: list, kind: str) -> bool:
    """Every value already has the schema's type, as JSON gives it (so no coercion can differ)."""
    if kind == "string":
        return all(type(v) is str for v in values)
    if kind == "boolean":
        return all(type(v) is bool for v in values)
    lo, hi = _INT64
    if kind in _INT_TYPES:
        return all(type(v) is int and lo <= v < hi for v in values)
    return all((type(v) is float and v == v) or (type(v) is int and lo <= v < hi) for v in values)


def _enforce_plain_columns(data: dict, schema: Schema):
    """The fast path for a dict of equal-length lists of plain values (what serving builds for a
    batch): one DataFrame, built with the dtypes the general path ends with. None when the input
    is anything else (a missing value, another type, a column missing): the general path then
    checks it and words the error."""
    if not schema.is_named or not data or not all(type(k) is str and type(v) is list for k, v in data.items()):
        return None
    lengths = {len(v) for v in data.values()}
    if len(lengths) != 1 or not (n := lengths.pop()):
        return None
    import numpy as np

    names, arrays = [], []
    for col in schema.columns:
        values = data.get(col.name)
        if values is None:
            if col.required:
                return None
            continue
        dtype = _PLAIN_DTYPES.get(col.type["type"])
        if dtype is None or not _plain_column(values, col.type["type"]):
            return None
        names.append(col.name)
        arrays.append(np.array(values, dtype=dtype))
    return _frame(arrays, tuple(names), n)


def _frame(arrays: list, names: tuple, rows: int):
    """A DataFrame from 1-d arrays that already have their final dtypes. ``pd.DataFrame(dict)``
    re-checks and re-infers everything and builds a new column index from the names: ≈ 300 µs for
    one row in pandas 3, more than the rest of a served request. Here each array becomes one block
    of a frame whose column and row indexes view cached ones (so a model that renames its frame's
    index renames only its own): ≈ 8 µs with pandas' block and manager constructors where this
    pandas has them as this code expects (``_block_frame``), ≈ 14 µs through the public
    ``api.internals.create_dataframe_from_blocks`` (pandas ≥ 3), else the public constructor."""
    import numpy as np
    import pandas as pd

    build = _block_frame()
    if build is not None:
        return build(arrays, _column_index(names).view(), _row_index(rows).view())
    build = _from_blocks()
    if build is not None:
        blocks = [(array.reshape(1, -1), np.array([i])) for i, array in enumerate(arrays)]
        return build(blocks, index=_row_index(rows).view(), columns=_column_index(names).view())
    return pd.DataFrame(dict(zip(names, arrays)), columns=list(names))


@functools.lru_cache(maxsize=1)
def _block_frame():
    """``build(arrays, columns, index)`` from pandas' internal block and manager constructors,
    skipping the integrity checks ``create_dataframe_from_blocks`` repeats for arrays that are
    right by construction. The frame owns the arrays (no copy): callers pass fresh ones. None
    unless it gives, on this pandas, exactly what the public constructor gives (checked once, on
    a frame of every plain dtype)."""
    try:
        import numpy as np
        import pandas as pd
        from pandas._libs.internals import BlockPlacement
        from pandas.core.internals.blocks import new_block
        from pandas.core.internals.managers import BlockManager

        def build(arrays, columns, index):
            blocks = tuple(new_block(array.reshape(1, -1), BlockPlacement(slice(i, i + 1)), ndim=2)
                           for i, array in enumerate(arrays))
            manager = BlockManager(blocks, [columns, index], verify_integrity=False)
            return pd.DataFrame._from_mgr(manager, manager.axes)

        probe = {name: np.array(values, dtype=dtype) for name, values, dtype in (
            ("s", ["a", "b"], "object"), ("i", [1, 2], "int64"), ("f", [0.5, 1.5], "float64"),
            ("b", [True, False], "bool"))}
        got = build(list(probe.values()), pd.Index(list(probe)), pd.RangeIndex(2))
        got.iloc[0, 1] = 7  # a frame built this way must take writes as any other does
        expected = pd.DataFrame(probe).astype({"s": object})  # (pandas 3 infers its string dtype)
        expected.iloc[0, 1] = 7
        pd.testing.assert_frame_equal(got, expected)
        return build
    except Exception:  # noqa: BLE001 - another pandas: the public constructors serve
        return None


@functools.lru_cache(maxsize=1)
def _from_blocks():
    try:
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:  # pandas < 3
        return None
    return create_dataframe_from_blocks


@functools.lru_cache(maxsize=256)
def _row_index(rows: int):
    import pandas as pd

    return pd.RangeIndex(rows)


@functools.lru_cache(maxsize=256)
def _column_index(names: tuple):
    """Indexes are immutable, so frames of the same schema (and length) share them."""
    import pandas as pd

    return pd.Index(list(names))


def enforce_dataframe(data: Any, schema: Schema | None):
    """Input as a DataFrame holding the schema's columns, each coerced to its type."""
    if schema is not None and schema.columns and type(data) is dict:
        df = _enforce_plain_columns(data, schema)
        if df is not None:
            return df
    df = to_dataframe(data)
    if schema is None or not schema.columns:
        return df
    if schema.is_named:
        present = [str(c) for c in df.columns]
        if len(schema.columns) == 1 and list(df.columns) == [0]:
            df = df.rename(columns={0: schema.columns[0].name})
            present = [schema.columns[0].name]
        missing = [c.name for c in schema.columns if c.required and c.name not in present]
        if missing:
            expected = ", ".join(f"'{c.name}' ({describe_type(c.type)})" for c in schema.columns)
            raise SchemaMismatchError(
                f"The input is missing column(s) {missing}. The model expects {expected}; "
                f"the input has {present}"
            )
        if any(type(c) is not str for c in df.columns):  # rename copies the frame: only when needed
            df = df.rename(columns={c: str(c) for c in df.columns})
        out = {}
        for col in schema.columns:
            if col.name not in df.columns:
                continue
            out[col.name] = _coerce_column(df[col.name], col, f"Input column '{col.name}'")
        import pandas as pd

        return pd.DataFrame(out, index=df.index)
    if len(df.columns) != len(schema.columns):
        raise SchemaMismatchError(
            f"The model expects {len(schema.columns)} unnamed column(s) "
            f"({', '.join(describe_type(c.type) for c in schema.columns)}) but the input has "
            f"{len(df.columns)}: {list(df.columns)}"
        )
    import pandas as pd

    cols = {}
    for i, (name, col) in enumerate(zip(df.columns, schema.columns)):
        cols[name] = _coerce_column(df[name], col, f"Input column {i}")
    return pd.DataFrame(cols, index=df.index)


def _rows_of(data: Any) -> list:
    """Tabular input as a plain list: values for one column, dicts (records) for several."""
    if hasattr(data, "columns") and hasattr(data, "to_dict"):
        if len(data.columns) == 1:
            return data.iloc[:, 0].tolist()
        return data.to_dict(orient="records")
    if type(data).__module__.startswith("pyarrow"):
        return _rows_of(data.to_pandas())
    if isinstance(data, (str, bytes)):
        return [data]
    if isinstance(data, dict):
        columns = list(data.values())
        if columns and all(isinstance(v, (list, tuple)) for v in columns):
            if len({len(v) for v in columns}) > 1:
                raise SchemaMismatchError("The input dict of columns has columns of different lengths")
            names = list(data)
            return [dict(zip(names, row)) for row in zip(*columns)] if len(names) > 1 else list(columns[0])
        return [data]
    if isinstance(data, (list, tuple)):
        return list(data)
    if hasattr(data, "tolist"):
        return data.tolist()
    raise SchemaMismatchError(
        f"This model takes a list (of values or of row dicts); got {type(data).__name__}"
    )


def enforce_list(data: Any, schema: Schema | None) -> list:
    """Input as a plain Python list, for models whose ``predict`` is annotated ``list[...]``.

    No pandas on this path: a list of strings is checked value by value.
    """
    rows = _rows_of(data)
    if schema is None or not schema.columns:
        return rows
    if len(schema.columns) == 1:
        col = schema.columns[0]
        where = f"Input column '{col.name}'" if col.name is not None else "Input column 0"
        out = []
        for i, v in enumerate(rows):
            if isinstance(v, dict) and col.name is not None and col.type["type"] != "object":
                v = v.get(col.name)
            if v is None:
                if col.required:
                    raise SchemaMismatchError(f"{where} is required ({describe_type(col.type)}) but row {i} has no value")
                out.append(None)
                continue
            out.append(check_value(v, col.type, f"{where}, row {i}"))
        return out
    spec = {"type": "object", "properties": {c.name: dict(c.type, required=c.required) for c in schema.columns}}
    return [check_value(r, spec, f"Input row {i}") for i, r in enumerate(rows)]


def enforce_payload(data: Any, schema: Schema | None):
    """A request payload (or a list of them) checked field by field; extra fields pass through."""
    if isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        return [enforce_payload(d, schema) for d in data]
    if not isinstance(data, dict):
        expected = f"with fields {schema.names}" if schema is not None else ""
        raise SchemaMismatchError(
            f"This model takes a JSON object {expected} (for example "
            f"{{'messages': [{{'role': 'user', 'content': 'hi'}}]}}), got {type(data).__name__} {_shown(data)}"
        )
    if schema is None:
        return data
    out = dict(data)
    for col in schema.columns:
        if col.name not in data or data[col.name] is None:
            if col.required:
                raise SchemaMismatchError(
                    f"The input is missing the required field '{col.name}' ({describe_type(col.type)}); "
                    f"it has fields {sorted(data)}"
                )
            continue
        out[col.name] = check_value(data[col.name], col.type, f"Input field '{col.name}'")
    return out


def enforce_params(params: dict | None, schema: ParamSchema | None) -> dict | None:
    """Params with defaults filled in; unknown names and wrong types are errors."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise SchemaMismatchError(f"params must be a dict of name to value, got {type(params).__name__}")
    if schema is None:
        if params:
            raise UnknownParamError(
                f"This model accepts no params, but got {sorted(params)}. Save the model with a "
                "signature that declares them (infer_signature(..., params={...}))"
            )
        return None
    known = {p.name for p in schema.params}
    unknown = sorted(set(params) - known)
    if unknown:
        raise UnknownParamError(f"Unknown param(s) {unknown}; this model accepts {sorted(known)}")
    out = {}
    for spec in schema.params:
        if spec.name not in params or params[spec.name] is None:
            out[spec.name] = spec.default
            continue
        value = params[spec.name]
        where = f"Param '{spec.name}'"
        if spec.shape is not None:
            if not isinstance(value, (list, tuple)):
                raise SchemaMismatchError(f"{where} expects a list of {spec.type} but got {_shown(value)}")
            out[spec.name] = [check_value(v, {"type": spec.type}, f"{where}[{i}]") for i, v in enumerate(value)]
        else:
            out[spec.name] = check_value(value, {"type": spec.type}, where)
    return out
