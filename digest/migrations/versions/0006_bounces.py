"""bounces and complaints: one row per parsed report, and the sending pause

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 03:00:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import digest.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounceevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("email_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=True),
        sa.Column("received_at", digest.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_key"),
    )
    op.create_index("ix_bounceevent_email_hash", "bounceevent", ["email_hash"])
    op.create_index("ix_bounceevent_received_at", "bounceevent", ["received_at"])
    op.create_index("ix_bounceevent_day", "bounceevent", ["day"])
    op.create_table(
        "sendingpause",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("paused_at", digest.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resumed_at", digest.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("sendingpause")
    op.drop_index("ix_bounceevent_day", table_name="bounceevent")
    op.drop_index("ix_bounceevent_received_at", table_name="bounceevent")
    op.drop_index("ix_bounceevent_email_hash", table_name="bounceevent")
    op.drop_table("bounceevent")
