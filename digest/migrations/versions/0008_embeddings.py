"""sentence embeddings of papers and interest texts (optional semantic backend)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

import digest.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "paperembedding",
        sa.Column("paper_key", sa.String(length=300), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", digest.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("paper_key", "model"),
    )
    op.create_table(
        "textembedding",
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("created_at", digest.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("text_hash", "model"),
    )


def downgrade() -> None:
    op.drop_table("textembedding")
    op.drop_table("paperembedding")
