"""inference experiments (shadow tests)

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-04 21:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inference_experiments",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("arn", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("endpoint_name", sa.String(length=63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("arn"),
    )
    with op.batch_alter_table("inference_experiments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inference_experiments_status"), ["status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_inference_experiments_endpoint_name"), ["endpoint_name"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("inference_experiments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inference_experiments_endpoint_name"))
        batch_op.drop_index(batch_op.f("ix_inference_experiments_status"))
    op.drop_table("inference_experiments")
