"""Hosting resources in the state store: models, endpoint configurations, endpoints and tags.

The SageMaker rules (what may be created, updated or deleted, and the errors that say why not)
are pier.control.service's; this module only reads and writes rows. A unit of work is one
transaction: `HostingStore.begin()` for changes (committed when the block ends, rolled back if
it raises), `read()` for reads. Inside it, `HostingTx` offers the queries the rules need.

    with store.begin() as tx:
        if tx.model(name) is None: ...
        tx.add(ModelRow(...), tags)

A unique key clashing at commit (a concurrent create of the same name, or of a name differing
only in case: one ARN) raises `Duplicate`: the caller says which resource already exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pier.store.db import Duplicate, Sessions
from pier.store.tables import DeploymentRow, EndpointConfigRow, EndpointRow, ModelRow, TagRow

__all__ = [
    "MAX_TAGS",
    "HostingStore",
    "HostingTx",
    "Resource",
    "TooManyTags",
    "deployment_history",
]

#: SageMaker's limit of tags per resource.
MAX_TAGS = 50

Resource = ModelRow | EndpointConfigRow | EndpointRow


class TooManyTags(Exception):
    """A resource would carry more than MAX_TAGS tags."""


class HostingTx:
    """The queries and writes of one transaction."""

    def __init__(self, session: Session) -> None:
        self._s = session

    # ---------------------------------------------------------------- resources
    def model(self, name: str) -> ModelRow | None:
        return self._s.get(ModelRow, name)

    def config(self, name: str) -> EndpointConfigRow | None:
        return self._s.get(EndpointConfigRow, name)

    def endpoint(self, name: str) -> EndpointRow | None:
        return self._s.get(EndpointRow, name)

    def models(self) -> list[ModelRow]:
        return list(self._s.scalars(select(ModelRow)))

    def configs(self) -> list[EndpointConfigRow]:
        return list(self._s.scalars(select(EndpointConfigRow)))

    def endpoints(self) -> list[EndpointRow]:
        return list(self._s.scalars(select(EndpointRow)))

    def taken(self, table: type[Resource], arn: str) -> bool:
        """Whether a resource of that kind has the ARN (names differing only in case do)."""
        return self._s.scalar(select(table.name).where(table.arn == arn)) is not None

    def add(self, row: Resource, tags: Iterable[Mapping[str, str]] = ()) -> None:
        """Add a resource with its tags (a clash of keys raises Duplicate from `begin`)."""
        self._s.add(row)
        self.put_tags(row.arn, tags)

    def delete(self, row: Resource) -> None:
        """Delete a resource and its tags."""
        self.drop_tags(row.arn)
        self._s.delete(row)

    # -------------------------------------------------------------- deployments
    def add_deployment(self, row: DeploymentRow) -> None:
        """Start an endpoint's deployment record (an UpdateEndpoint to a new config)."""
        self._s.add(row)

    def deployment(self, endpoint: str, generation: int) -> DeploymentRow | None:
        """The deployment that gave `endpoint` its `generation`, or None."""
        return self._s.scalar(
            select(DeploymentRow).where(
                DeploymentRow.endpoint_name == endpoint, DeploymentRow.generation == generation
            )
        )

    def deployments(self, endpoint: str, limit: int = 10) -> list[DeploymentRow]:
        """The endpoint's latest `limit` deployments, newest first."""
        return list(
            self._s.scalars(
                select(DeploymentRow)
                .where(DeploymentRow.endpoint_name == endpoint)
                .order_by(DeploymentRow.id.desc())
                .limit(limit)
            )
        )

    def drop_deployments(self, endpoint: str) -> None:
        """Forget the endpoint's history (it is being deleted)."""
        self._s.execute(delete(DeploymentRow).where(DeploymentRow.endpoint_name == endpoint))

    # --------------------------------------------------------------------- tags
    def resource_exists(self, arn: str) -> bool:
        for table in (ModelRow, EndpointConfigRow, EndpointRow):
            if self._s.scalar(select(table.name).where(table.arn == arn)) is not None:
                return True
        return False

    def tags(self, arn: str) -> list[TagRow]:
        """The resource's tags, oldest first."""
        return list(self._s.scalars(select(TagRow).where(TagRow.arn == arn).order_by(TagRow.id)))

    def put_tags(self, arn: str, tags: Iterable[Mapping[str, str]]) -> None:
        """Add tags or change their values; TooManyTags past MAX_TAGS."""
        for tag in tags:
            existing = self._s.scalar(
                select(TagRow).where(TagRow.arn == arn, TagRow.key == tag["Key"])
            )
            if existing is None:
                self._s.add(TagRow(arn=arn, key=tag["Key"], value=tag.get("Value", "")))
            else:
                existing.value = tag.get("Value", "")
        self._s.flush()
        count = self._s.scalar(select(func.count()).select_from(TagRow).where(TagRow.arn == arn))
        if (count or 0) > MAX_TAGS:
            raise TooManyTags(arn)

    def delete_tags(self, arn: str, keys: Iterable[str]) -> None:
        for tag in self._s.scalars(
            select(TagRow).where(TagRow.arn == arn, TagRow.key.in_(list(keys)))
        ):
            self._s.delete(tag)

    def drop_tags(self, arn: str) -> None:
        for tag in self._s.scalars(select(TagRow).where(TagRow.arn == arn)):
            self._s.delete(tag)


class HostingStore:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    @contextmanager
    def begin(self) -> Iterator[HostingTx]:
        """A transaction that changes rows; Duplicate when a unique key clashes at commit."""
        try:
            with self._sessions.begin() as session:
                yield HostingTx(session)
        except IntegrityError:
            raise Duplicate() from None

    @contextmanager
    def read(self) -> Iterator[HostingTx]:
        with self._sessions() as session:
            yield HostingTx(session)


def deployment_history(sessions: Sessions, endpoint: str, limit: int = 10) -> list[DeploymentRow]:
    """The endpoint's latest `limit` deployments, newest first (empty for an unknown
    endpoint): what the CLI and the console show. Rows are detached, safe to read anywhere."""
    with HostingStore(sessions).read() as tx:
        return tx.deployments(endpoint, limit)
