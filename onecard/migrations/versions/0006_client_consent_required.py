"""oidc: whether a client's users are asked to consent (false only for onecard's own pages)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('oidc_client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_required', sa.Boolean(), nullable=False, server_default=sa.true()))
    # The pages' client, if an earlier version made it, keeps skipping consent.
    op.execute("UPDATE oidc_client SET consent_required = false WHERE client_id = 'onecard-portal'")


def downgrade() -> None:
    with op.batch_alter_table('oidc_client', schema=None) as batch_op:
        batch_op.drop_column('consent_required')
