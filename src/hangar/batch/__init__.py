"""Batch inference: a table of inputs → a stored table of predictions (``hangar batch``)."""

from __future__ import annotations

from hangar.batch.job import BatchResult, run

__all__ = ["BatchResult", "run", "spark_udf"]


def spark_udf(spark, model_uri: str, *, columns: list[str] | None = None, params: dict | None = None,
              result_type: str | None = None):
    """A pandas UDF that scores rows with ``model_uri`` inside an existing Spark job."""
    from hangar.batch.engines.spark import spark_udf as make

    return make(spark, model_uri, columns=columns, params=params, result_type=result_type)
