"""jobs: where a job runs (executor) and its Ray task or job id (executor_ref)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kl_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("executor", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("executor_ref", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_kl_jobs_executor_ref"), ["executor_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("kl_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kl_jobs_executor_ref"))
        batch_op.drop_column("executor_ref")
        batch_op.drop_column("executor")
