"""Registry and governance: catalogs, schemas, registered models, versions, tags, aliases
with their history, lineage edges and the hash-chained audit log.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.String(64)
KEY = sa.String(250)
STATUS = sa.String(20)
NAME = sa.String(128)
FULL_NAME = sa.String(400)


def upgrade():
    op.create_table(
        "catalogs",
        sa.Column("name", NAME, primary_key=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "schemas",
        sa.Column("catalog_name", NAME, sa.ForeignKey("catalogs.name"), primary_key=True),
        sa.Column("name", NAME, primary_key=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "registered_models",
        sa.Column("full_name", FULL_NAME, primary_key=True),
        sa.Column("catalog_name", NAME, nullable=False),
        sa.Column("schema_name", NAME, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("last_version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_registered_models_schema", "registered_models", ["catalog_name", "schema_name"])
    op.create_table(
        "model_versions",
        sa.Column("full_name", FULL_NAME, sa.ForeignKey("registered_models.full_name"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("logged_model_id", ID, nullable=True),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("storage_location", sa.Text, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("status_message", sa.Text, nullable=True),
        sa.Column("checksums", sa.Text, nullable=True),
        sa.Column("signature", sa.Text, nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("lease_expires", sa.BigInteger, nullable=True),
        sa.Column("deleted_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "registered_model_tags",
        sa.Column("full_name", FULL_NAME, sa.ForeignKey("registered_models.full_name", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", KEY, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "model_version_tags",
        sa.Column("full_name", FULL_NAME, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("key", KEY, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "aliases",
        sa.Column("full_name", FULL_NAME, sa.ForeignKey("registered_models.full_name", ondelete="CASCADE"), primary_key=True),
        sa.Column("alias", NAME, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("full_name", FULL_NAME, nullable=False),
        sa.Column("alias", NAME, nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("previous_version", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_alias_history_model_alias", "alias_history", ["full_name", "alias"])
    op.create_table(
        "lineage_edges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("src_type", sa.String(32), nullable=False),
        sa.Column("src_id", sa.String(512), nullable=False),
        sa.Column("dst_type", sa.String(32), nullable=False),
        sa.Column("dst_id", sa.String(512), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_lineage_src", "lineage_edges", ["src_type", "src_id"])
    op.create_index("ix_lineage_dst", "lineage_edges", ["dst_type", "dst_id"])
    op.create_index("ux_lineage_edge", "lineage_edges", ["src_type", "src_id", "dst_type", "dst_id"], unique=True)
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("securable_type", sa.String(32), nullable=False),
        sa.Column("securable", sa.String(512), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("details", sa.Text, nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_securable", "audit_log", ["securable", "at"])


def downgrade():
    for name in (
        "audit_log",
        "lineage_edges",
        "alias_history",
        "aliases",
        "model_version_tags",
        "registered_model_tags",
        "model_versions",
        "registered_models",
        "schemas",
        "catalogs",
    ):
        op.drop_table(name)
