"""Datasets (run inputs) and logged models with their own params, tags and metrics.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.String(64)
KEY = sa.String(250)
STATUS = sa.String(20)


def upgrade():
    op.create_table(
        "datasets",
        sa.Column("dataset_id", ID, primary_key=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.experiment_id"), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("source_type", sa.String(64), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("schema", sa.Text, nullable=True),
        sa.Column("profile", sa.Text, nullable=True),
    )
    op.create_index("ix_datasets_experiment_name_digest", "datasets", ["experiment_id", "name", "digest"], unique=True)
    op.create_table(
        "inputs",
        sa.Column("dataset_id", ID, sa.ForeignKey("datasets.dataset_id"), primary_key=True),
        sa.Column("run_id", ID, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("context", sa.String(64), nullable=True),
    )
    op.create_table(
        "logged_models",
        sa.Column("model_id", ID, primary_key=True),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.experiment_id"), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("source_run_id", ID, sa.ForeignKey("runs.run_id"), nullable=True),
        sa.Column("artifact_location", sa.Text, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("flavors", sa.Text, nullable=True),
        sa.Column("creation_time", sa.BigInteger, nullable=False),
        sa.Column("last_updated_time", sa.BigInteger, nullable=False),
        sa.Column("lifecycle_stage", STATUS, nullable=False),
        sa.Column("lease_expires", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_logged_models_run_name", "logged_models", ["source_run_id", "name"])
    for name in ("logged_model_params", "logged_model_tags"):
        op.create_table(
            name,
            sa.Column("model_id", ID, sa.ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True),
            sa.Column("key", KEY, primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
    op.create_table(
        "logged_model_metrics",
        sa.Column("model_id", ID, sa.ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", KEY, primary_key=True),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("run_id", ID, nullable=True),
    )


def downgrade():
    for name in ("logged_model_metrics", "logged_model_tags", "logged_model_params", "logged_models",
                 "inputs", "datasets"):
        op.drop_table(name)
