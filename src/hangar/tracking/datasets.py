"""Describe a dataset for ``log_input``: name, digest, source, schema and a small profile."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hangar.errors import InvalidArgumentError
from hangar.tracking.entities import Dataset, DatasetInput

__all__ = ["Dataset", "DatasetInput", "dataset_from"]

_DIGEST_ROWS = 10_000


def dataset_from(data: Any, name: str | None = None, source: str | None = None) -> Dataset:
    """A Dataset for a pandas DataFrame, a pyarrow Table, a list of rows or a dict of columns.

    The digest covers the schema and (up to) the first 10,000 rows, like MLflow's, so the
    same data logged twice is one dataset.
    """
    if isinstance(data, Dataset):
        return data
    from hangar.models.infer import infer_schema
    from hangar.models.inputs import to_dataframe

    try:
        df = to_dataframe(data)
    except Exception as exc:
        raise InvalidArgumentError(f"log_input needs a table (DataFrame, Arrow table, rows): {exc}") from None
    schema = infer_schema(df).to_json() if len(df.columns) else "[]"
    import pandas as pd

    head = df.head(_DIGEST_ROWS)
    try:
        row_hash = pd.util.hash_pandas_object(head, index=False).values.tobytes()
    except TypeError:  # unhashable cells (lists, dicts): hash their JSON
        row_hash = head.to_json(orient="values", default_handler=str).encode()
    digest = hashlib.sha256(schema.encode() + row_hash).hexdigest()[:16]
    profile = json.dumps({"num_rows": int(len(df)), "num_elements": int(df.size)})
    return Dataset(name=name or "dataset", digest=digest, source_type="code" if source is None else "uri",
                   source=source or "", schema=schema, profile=profile)
