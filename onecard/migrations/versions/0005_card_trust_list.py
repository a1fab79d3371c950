"""one-card: the trust list as published, shared by every worker

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import onecard.core.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('card_trust_list',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('jws', sa.Text(), nullable=False),
    sa.Column('issued_at', onecard.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_update', onecard.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_card_trust_list'))
    )


def downgrade() -> None:
    op.drop_table('card_trust_list')
