"""scheduler lease: one row per singleton role, claimed by conditional UPDATE

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 02:10:00.000000
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import digest.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('schedulerlease',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('expires_at', digest.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('acquired_at', digest.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('schedulerlease')
