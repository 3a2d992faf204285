"""calendar: why a delivery was not sent, why an edition is held, the "nothing new" note

Revision ID: 0009_i15_calendar
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

import digest.models

revision = "0009_i15_calendar"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("reason", sa.String(length=200), nullable=True))
        batch.add_column(
            sa.Column("window_end", digest.models.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("edition") as batch:
        batch.add_column(sa.Column("note", sa.String(), nullable=True))
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(
            sa.Column("nothing_new_note", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("nothing_new_note")
    with op.batch_alter_table("edition") as batch:
        batch.drop_column("note")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("window_end")
        batch.drop_column("reason")
