"""profile: papers per digest chosen by the subscriber, an imported library's text

Revision ID: 0010_i15b_profile
Revises: 0009_i15_calendar
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_i15b_profile"
down_revision = "0009_i15_calendar"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(sa.Column("papers_per_digest", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("library_text", sa.Text(), nullable=False, server_default=sa.text("''"))
        )


def downgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("library_text")
        batch.drop_column("papers_per_digest")
