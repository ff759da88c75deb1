"""Filter strings for registered models and versions, on the same parser and SQL builder as
runs (``hangar.tracking.search``): e.g. ``name LIKE 'main.support.%' and tags.team = 'cx'``."""

from __future__ import annotations

from hangar.store import schema as s
from hangar.tracking.search import ATTRIBUTES, TAGS, OrderTerm, SearchTarget

REGISTERED_MODEL_SEARCH = SearchTarget(
    name="registered model", table=s.registered_models, id_column="full_name",
    attributes={"name": ("full_name", "string"), "full_name": ("full_name", "string"),
                "catalog_name": ("catalog_name", "string"), "schema_name": ("schema_name", "string"),
                "owner": ("owner", "string"), "comment": ("comment", "string"),
                "created_at": ("created_at", "number"), "updated_at": ("updated_at", "number"),
                "last_version": ("last_version", "number")},
    children={TAGS: (s.registered_model_tags, "full_name")},
    aliases={"creation_timestamp": "created_at", "last_updated_timestamp": "updated_at"},
    default_order=(OrderTerm(ATTRIBUTES, "full_name"),),
    tiebreakers=(OrderTerm(ATTRIBUTES, "full_name"),),
)

MODEL_VERSION_SEARCH = SearchTarget(
    name="model version", table=s.model_versions, id_column="version",
    attributes={"version": ("version", "number"), "status": ("status", "string"), "source": ("source", "string"),
                "run_id": ("run_id", "string"), "logged_model_id": ("logged_model_id", "string"),
                "created_by": ("created_by", "string"), "created_at": ("created_at", "number"),
                "updated_at": ("updated_at", "number")},
    aliases={"creation_timestamp": "created_at"},
    default_order=(OrderTerm(ATTRIBUTES, "version", False),),
    tiebreakers=(OrderTerm(ATTRIBUTES, "version", False),),
)
