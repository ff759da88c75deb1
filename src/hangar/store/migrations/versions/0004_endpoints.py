"""Endpoints: named real-time deployments (their config, revision and who changed them).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade():
    op.drop_table("endpoints")
