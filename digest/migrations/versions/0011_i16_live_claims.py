"""live senders (heartbeat) and ledger indexes that keep claiming O(batch)

Revision ID: 0011_i16
Revises: 0010_i15b_profile
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

import digest.models

revision = "0011_i16"
down_revision = "0010_i15b_profile"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sendingprocess",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", digest.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", digest.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_edition_state", ["edition_id", "state", "id"])
        batch_op.create_index("ix_delivery_subscriber_state", ["subscriber_id", "state"])
        # Covered by the two above (and the unique pair): one index less to write per update.
        batch_op.drop_index("ix_delivery_edition_id")
        batch_op.drop_index("ix_delivery_subscriber_id")
        # A trap for the planner (every sent row, per batch of the profile load); unused else.
        batch_op.drop_index("ix_delivery_state_next")


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_state_next", ["state", "next_attempt_at"])
        batch_op.create_index("ix_delivery_subscriber_id", ["subscriber_id"])
        batch_op.create_index("ix_delivery_edition_id", ["edition_id"])
        batch_op.drop_index("ix_delivery_subscriber_state")
        batch_op.drop_index("ix_delivery_edition_state")
    op.drop_table("sendingprocess")
