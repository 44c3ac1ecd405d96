"""monitoring schedules and their executions

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_schedules",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("arn", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("endpoint_name", sa.String(length=63), nullable=False),
        sa.Column("monitoring_type", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("last_tick_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("arn"),
    )
    with op.batch_alter_table("monitoring_schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_monitoring_schedules_status"), ["status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_monitoring_schedules_endpoint_name"), ["endpoint_name"], unique=False
        )
    op.create_table(
        "monitoring_executions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule_name", sa.String(length=63), nullable=False),
        sa.Column("endpoint_name", sa.String(length=63), nullable=False),
        sa.Column("monitoring_type", sa.String(length=32), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("output_uri", sa.String(length=1024), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitoring_executions", schema=None) as batch_op:
        for column in ("schedule_name", "endpoint_name", "status"):
            batch_op.create_index(
                batch_op.f(f"ix_monitoring_executions_{column}"), [column], unique=False
            )


def downgrade() -> None:
    with op.batch_alter_table("monitoring_executions", schema=None) as batch_op:
        for column in ("schedule_name", "endpoint_name", "status"):
            batch_op.drop_index(batch_op.f(f"ix_monitoring_executions_{column}"))
    op.drop_table("monitoring_executions")
    with op.batch_alter_table("monitoring_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitoring_schedules_endpoint_name"))
        batch_op.drop_index(batch_op.f("ix_monitoring_schedules_status"))
    op.drop_table("monitoring_schedules")
