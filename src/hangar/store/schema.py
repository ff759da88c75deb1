"""Tables of the metadata store (SQLAlchemy Core). Migrations in ``migrations/`` create them;
this module is what the code queries. Keep the two in step: a test compares them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ID = String(64)
KEY = String(250)
STATUS = String(20)

experiments = Table(
    "experiments", metadata,
    Column("experiment_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("artifact_location", Text, nullable=False),
    Column("lifecycle_stage", STATUS, nullable=False, default="active"),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
)

experiment_tags = Table(
    "experiment_tags", metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs", metadata,
    Column("run_id", ID, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("run_name", String(250), nullable=False),
    Column("status", STATUS, nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("lifecycle_stage", STATUS, nullable=False, default="active"),
    Column("artifact_uri", Text, nullable=False),
    Column("user_id", String(256), nullable=False),
    Column("parent_run_id", ID, nullable=True),
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
)

params = Table(
    "params", metadata,
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_params_key_value", "key", "value"),
)

tags = Table(
    "tags", metadata,
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tags_key_value", "key", "value"),
)

metrics = Table(
    "metrics", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("key", KEY, nullable=False),
    Column("value", Float(precision=53), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

latest_metrics = Table(
    "latest_metrics", metadata,
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Float(precision=53), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
)

datasets = Table(
    "datasets", metadata,
    Column("dataset_id", ID, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("source_type", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("schema", Text, nullable=True),
    Column("profile", Text, nullable=True),
    Index("ix_datasets_experiment_name_digest", "experiment_id", "name", "digest", unique=True),
)

inputs = Table(
    "inputs", metadata,
    Column("dataset_id", ID, ForeignKey("datasets.dataset_id"), primary_key=True),
    Column("run_id", ID, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("context", String(64), nullable=True),
)

logged_models = Table(
    "logged_models", metadata,
    Column("model_id", ID, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("source_run_id", ID, ForeignKey("runs.run_id"), nullable=True),
    Column("artifact_location", Text, nullable=False),
    Column("status", STATUS, nullable=False),
    Column("flavors", Text, nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_updated_time", BigInteger, nullable=False),
    Column("lifecycle_stage", STATUS, nullable=False, default="active"),
    Column("lease_expires", BigInteger, nullable=True),
    Index("ix_logged_models_run_name", "source_run_id", "name"),
)

logged_model_params = Table(
    "logged_model_params", metadata,
    Column("model_id", ID, ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
)

logged_model_tags = Table(
    "logged_model_tags", metadata,
    Column("model_id", ID, ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
)

logged_model_metrics = Table(
    "logged_model_metrics", metadata,
    Column("model_id", ID, ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Float(precision=53), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("run_id", ID, nullable=True),
)

# -- registry and governance (migration 0003) ------------------------------------------
NAME = String(128)
FULL_NAME = String(400)

catalogs = Table(
    "catalogs", metadata,
    Column("name", NAME, primary_key=True),
    Column("comment", Text, nullable=True),
    Column("owner", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

schemas = Table(
    "schemas", metadata,
    Column("catalog_name", NAME, ForeignKey("catalogs.name"), primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("comment", Text, nullable=True),
    Column("owner", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

registered_models = Table(
    "registered_models", metadata,
    Column("full_name", FULL_NAME, primary_key=True),
    Column("catalog_name", NAME, nullable=False),
    Column("schema_name", NAME, nullable=False),
    Column("name", NAME, nullable=False),
    Column("comment", Text, nullable=True),
    Column("owner", String(256), nullable=False),
    Column("last_version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    Index("ix_registered_models_schema", "catalog_name", "schema_name"),
)

model_versions = Table(
    "model_versions", metadata,
    Column("full_name", FULL_NAME, ForeignKey("registered_models.full_name"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("source", Text, nullable=False),
    Column("logged_model_id", ID, nullable=True),
    Column("run_id", ID, nullable=True),
    Column("storage_location", Text, nullable=False),
    Column("status", STATUS, nullable=False),
    Column("status_message", Text, nullable=True),
    Column("checksums", Text, nullable=True),
    Column("signature", Text, nullable=True),
    Column("comment", Text, nullable=True),
    Column("created_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("lease_expires", BigInteger, nullable=True),
    Column("deleted_at", BigInteger, nullable=True),
)

registered_model_tags = Table(
    "registered_model_tags", metadata,
    Column("full_name", FULL_NAME, ForeignKey("registered_models.full_name", ondelete="CASCADE"), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
)

model_version_tags = Table(
    "model_version_tags", metadata,
    Column("full_name", FULL_NAME, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("value", Text, nullable=False),
)

aliases = Table(
    "aliases", metadata,
    Column("full_name", FULL_NAME, ForeignKey("registered_models.full_name", ondelete="CASCADE"), primary_key=True),
    Column("alias", NAME, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_by", String(256), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

alias_history = Table(
    "alias_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("full_name", FULL_NAME, nullable=False),
    Column("alias", NAME, nullable=False),
    Column("version", Integer, nullable=True),
    Column("previous_version", Integer, nullable=True),
    Column("actor", String(256), nullable=False),
    Column("at", BigInteger, nullable=False),
    Index("ix_alias_history_model_alias", "full_name", "alias"),
)

lineage_edges = Table(
    "lineage_edges", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("src_type", String(32), nullable=False),
    Column("src_id", String(512), nullable=False),
    Column("dst_type", String(32), nullable=False),
    Column("dst_id", String(512), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_lineage_src", "src_type", "src_id"),
    Index("ix_lineage_dst", "dst_type", "dst_id"),
    Index("ux_lineage_edge", "src_type", "src_id", "dst_type", "dst_id", unique=True),
)

audit_log = Table(
    "audit_log", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("securable_type", String(32), nullable=False),
    Column("securable", String(512), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("details", Text, nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_securable", "securable", "at"),
)

endpoints = Table(
    "endpoints", metadata,
    Column("name", String(128), primary_key=True),
    Column("config", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# -- identity and permissions (migration 0005) -------------------------------------------
principals = Table(
    "principals", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("disabled", Boolean, nullable=False),
)

group_members = Table(
    "group_members", metadata,
    Column("group_id", Integer, ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Integer, ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_group_members_member", "member_id"),
)

tokens = Table(
    "tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("principal_id", Integer, ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("last_used_at", BigInteger, nullable=True),
    Index("ix_tokens_principal", "principal_id"),
)

grants = Table(
    "grants", metadata,
    Column("securable_type", String(32), primary_key=True),
    Column("securable", String(512), primary_key=True),
    Column("principal_id", Integer, ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    Column("privilege", String(32), primary_key=True),
    Column("granted_by", String(256), nullable=False),
    Column("granted_at", BigInteger, nullable=False),
    Index("ix_grants_principal", "principal_id"),
)

# Owners of securables without an owner column of their own (experiments; endpoints later).
# Catalogs, schemas and registered models keep their owner in their own row.
securable_owners = Table(
    "securable_owners", metadata,
    Column("securable_type", String(32), primary_key=True),
    Column("securable", String(512), primary_key=True),
    Column("owner", String(256), nullable=False),
)
