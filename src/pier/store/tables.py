"""Tables of the state store. What was asked (desired state) lives here; what runs is the
hosting backend's business (it records its instances so a restarted platform can adopt them),
and the reconcile loop moves one toward the other.

Resource requests are stored as the JSON the API received (validated), because Describe*
answers echo them; the columns pulled out are the ones queries filter and sort on.

Every datetime column is a `UtcDateTime`: written in UTC and read back aware, on SQLite as on
PostgreSQL, so no caller repairs what the store hands back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp with time zone that always comes back aware, in UTC.

    PostgreSQL's timestamptz returns aware values in the session's time zone; SQLite has no
    time zone type, and SQLAlchemy stores and returns its wall-clock digits without the offset.
    So values are converted to UTC before they are written (an aware time in another zone
    would otherwise be stored as its local digits on SQLite) and marked UTC when read. The
    column type in the database is unchanged: DateTime(timezone=True), as the migrations made.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # Which zone a naive time means is a guess: refuse it rather than store a wrong one.
            raise ValueError(f"naive datetime {value.isoformat()} given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # SQLite hands back the stored digits, which are UTC (see process_bind_param).
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: UtcDateTime(),
    }


class ModelRow(Base):
    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256), unique=True)
    created_at: Mapped[datetime]
    request: Mapped[dict[str, Any]]


class EndpointConfigRow(Base):
    __tablename__ = "endpoint_configs"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256), unique=True)
    created_at: Mapped[datetime]
    request: Mapped[dict[str, Any]]


class EndpointRow(Base):
    __tablename__ = "endpoints"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256), unique=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime]
    last_modified_at: Mapped[datetime]
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # The configuration that serves (or is being created), snapshotted at Create/Update time:
    # SageMaker keeps serving a config even after DeleteEndpointConfig / DeleteModel. The JSON
    # of deployed/desired/pending is pier.control.deployment's (Deployment.to_json).
    config_name: Mapped[str] = mapped_column(String(63))
    deployed: Mapped[dict[str, Any]]
    # Label of the instances that serve (config name @ generation): a restarted platform adopts
    # exactly the instances carrying it, and an update launches a fleet with a new label.
    fleet: Mapped[str] = mapped_column(String(96))
    # An update in progress: the snapshot being rolled out, or None.
    pending_config_name: Mapped[str | None] = mapped_column(String(63), default=None)
    pending: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Per variant: {"VariantName": {"DesiredWeight": w, "DesiredInstanceCount": n}}.
    desired: Mapped[dict[str, Any]]
    # Bumped on every change of desired state; the reconciler acts on a generation once.
    generation: Mapped[int] = mapped_column(Integer, default=1)
    deployment_config: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class DeploymentRow(Base):
    """One UpdateEndpoint to a new configuration, as it went (the endpoint's deployment
    history): its DeploymentConfig, the planned steps (pier.control.rollout's Plan JSON),
    where it stands, and how it ended. Rows go with their endpoint."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_name: Mapped[str] = mapped_column(String(63), index=True)
    generation: Mapped[int] = mapped_column(Integer)  # the endpoint's generation it made
    from_config: Mapped[str] = mapped_column(String(63))
    to_config: Mapped[str] = mapped_column(String(63))
    policy: Mapped[str] = mapped_column(String(16))  # ALL_AT_ONCE, CANARY, LINEAR, ROLLING
    deployment_config: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    plan: Mapped[dict[str, Any]]
    # InProgress, Succeeded, RolledBack, Failed (the new fleet never came up), RollbackFailed
    status: Mapped[str] = mapped_column(String(32))
    step: Mapped[int] = mapped_column(Integer, default=-1)  # -1: launching, then 0..n-1
    share: Mapped[float] = mapped_column(Float, default=0.0)  # traffic on the new fleet now
    step_started_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)  # rollback or failure


class TagRow(Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("arn", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    arn: Mapped[str] = mapped_column(String(256), index=True)
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(String(256))


class MonitoringScheduleRow(Base):
    """A monitoring schedule (CreateMonitoringSchedule): its request and where it stands."""

    __tablename__ = "monitoring_schedules"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256), unique=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    endpoint_name: Mapped[str] = mapped_column(String(63), index=True)
    monitoring_type: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    last_modified_at: Mapped[datetime]
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # MonitoringScheduleConfig (and Tags) as received; Describe echoes it.
    request: Mapped[dict[str, Any]]
    # The last tick handed to an execution: the scheduler runs the ticks after it (only the
    # latest of those missed while the platform was down, as SageMaker does not backfill).
    last_tick_at: Mapped[datetime | None] = mapped_column(default=None)


class MonitoringExecutionRow(Base):
    """One execution of a schedule; kept after DeleteMonitoringSchedule, as SageMaker does."""

    __tablename__ = "monitoring_executions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_name: Mapped[str] = mapped_column(String(63), index=True)
    endpoint_name: Mapped[str] = mapped_column(String(63), index=True)
    monitoring_type: Mapped[str] = mapped_column(String(32))
    scheduled_at: Mapped[datetime]
    created_at: Mapped[datetime]
    last_modified_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(32), index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    window_start: Mapped[datetime | None] = mapped_column(default=None)
    window_end: Mapped[datetime | None] = mapped_column(default=None)
    output_uri: Mapped[str | None] = mapped_column(String(1024), default=None)
    # What `pier monitor report` shows: input counts, per-feature drift, violations.
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class MetricPointRow(Base):
    """One minute of one metric (CloudWatch's 1-minute resolution), written by pier.store.metrics.

    `series` is a hash of (namespace, metric_name, dimensions): dimensions may be long (30 of
    up to 1 KiB), too long for a database index. `timestamp` is the minute's start, in epoch
    seconds (UTC). Points arriving for a stored minute are merged into it (counts and sums add,
    extremes widen), so the row is always the minute's statistic set."""

    __tablename__ = "metric_points"
    __table_args__ = (Index("ix_metric_points_name", "namespace", "metric_name"),)

    series: Mapped[str] = mapped_column(String(64), primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    namespace: Mapped[str] = mapped_column(String(255))
    metric_name: Mapped[str] = mapped_column(String(255))
    # Canonical JSON: [[name, value], ...] sorted by name.
    dimensions: Mapped[str] = mapped_column(Text)
    sample_count: Mapped[float] = mapped_column(Float)
    sum: Mapped[float] = mapped_column(Float)
    minimum: Mapped[float] = mapped_column(Float)
    maximum: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32))


class AlarmRow(Base):
    """A CloudWatch metric alarm: the PutMetricAlarm request (as validated) and its
    current state. pier.store.alarms reads and writes it; the alarm runner evaluates it."""

    __tablename__ = "alarms"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    arn: Mapped[str] = mapped_column(String(512), unique=True)
    request: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(Text)
    reason_data: Mapped[str | None] = mapped_column(Text, default=None)  # a JSON string
    state_updated_at: Mapped[datetime]
    configuration_updated_at: Mapped[datetime]


class AlarmHistoryRow(Base):
    """DescribeAlarmHistory's items: StateUpdate, ConfigurationUpdate and Action."""

    __tablename__ = "alarm_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alarm_name: Mapped[str] = mapped_column(String(255), index=True)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    type: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[str] = mapped_column(Text)  # HistoryData: a JSON string, as CloudWatch's
