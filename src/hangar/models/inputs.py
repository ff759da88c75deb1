"""Turn the input shapes Hangar accepts into what a model receives.

Accepted everywhere: a pandas DataFrame, a list of dicts (rows), a list of scalars (one
column), a dict of columns, a pyarrow Table or RecordBatch, a numpy array, a single string,
and OpenAI-style payloads (``{"messages": [...]}``), which pass through unchanged.
"""

from __future__ import annotations

from typing import Any

from hangar.errors import InvalidArgumentError

LLM_TASKS = ("llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings")


def is_payload_example(example: Any) -> bool:
    """A dict whose values are nested (lists of dicts, dicts) is a request payload, not columns."""
    if not isinstance(example, dict) or not example:
        return False
    for value in example.values():
        if isinstance(value, dict):
            return True
        if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
            return True
    return False


def to_dataframe(data: Any):
    """Any tabular input as a pandas DataFrame (a single string or row becomes one row)."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    mod = type(data).__module__
    if mod.startswith("pyarrow"):
        return data.to_pandas()
    if mod.startswith("numpy"):
        import numpy as np

        arr = np.asarray(data)
        if arr.ndim == 1:
            return pd.DataFrame({0: arr})
        if arr.ndim == 2:
            return pd.DataFrame(arr)
        raise InvalidArgumentError(f"A numpy input must be 1-d or 2-d, got shape {arr.shape}")
    if isinstance(data, (str, bytes)):
        return pd.DataFrame({0: [data]})
    if isinstance(data, dict):
        if not data:
            raise InvalidArgumentError("The input is an empty dict; pass at least one column")
        if all(isinstance(v, (list, tuple)) or type(v).__module__.startswith("numpy") and getattr(v, "ndim", 0) == 1
               for v in data.values()):
            lengths = {len(v) for v in data.values()}
            if len(lengths) > 1:
                raise InvalidArgumentError(
                    f"The input dict of columns has columns of different lengths: "
                    f"{ {k: len(v) for k, v in data.items()} }"
                )
            return pd.DataFrame({k: list(v) for k, v in data.items()})
        return pd.DataFrame([data])
    if isinstance(data, (list, tuple)):
        if not data:
            return pd.DataFrame()
        if all(isinstance(r, dict) for r in data):
            return pd.DataFrame.from_records(list(data))
        if any(isinstance(r, dict) for r in data):
            raise InvalidArgumentError("The input list mixes dicts (rows) and other values; pass one kind")
        if all(isinstance(r, (list, tuple)) for r in data):
            return pd.DataFrame([list(r) for r in data])
        return pd.DataFrame({0: list(data)})
    raise InvalidArgumentError(
        f"Unsupported input of type {type(data).__name__}; pass a pandas DataFrame, a list of dicts, "
        "a list of values, a dict of columns, a pyarrow Table or an OpenAI-style payload dict"
    )


def text_column(df, preferred: str = "text") -> list[str]:
    """The strings of the ``preferred`` column, or of the only column, of a DataFrame."""
    from hangar.errors import SchemaMismatchError

    cols = list(df.columns)
    if preferred in cols:
        col = preferred
    elif len(cols) == 1:
        col = cols[0]
    else:
        raise SchemaMismatchError(f"Expected a '{preferred}' column (or a single string column), got columns {cols}")
    values = df[col].tolist()
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise SchemaMismatchError(f"Column '{col}' row {bad} is not a string: {values[bad]!r}")
    return values
