"""Identity and permissions: principals (users, groups, service principals), group membership,
personal access tokens (SHA-256 digests only), grants, and owners of securables that have no
owner column of their own (experiments, endpoints).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "principals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("member_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
        sa.Index("ix_group_members_member", "member_id"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=True),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.Column("last_used_at", sa.BigInteger, nullable=True),
        sa.Index("ix_tokens_principal", "principal_id"),
    )
    op.create_table(
        "grants",
        sa.Column("securable_type", sa.String(32), primary_key=True),
        sa.Column("securable", sa.String(512), primary_key=True),
        sa.Column("principal_id", sa.Integer, sa.ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("privilege", sa.String(32), primary_key=True),
        sa.Column("granted_by", sa.String(256), nullable=False),
        sa.Column("granted_at", sa.BigInteger, nullable=False),
        sa.Index("ix_grants_principal", "principal_id"),
    )
    op.create_table(
        "securable_owners",
        sa.Column("securable_type", sa.String(32), primary_key=True),
        sa.Column("securable", sa.String(512), primary_key=True),
        sa.Column("owner", sa.String(256), nullable=False),
    )


def downgrade():
    op.drop_table("securable_owners")
    op.drop_table("grants")
    op.drop_table("tokens")
    op.drop_table("group_members")
    op.drop_table("principals")
