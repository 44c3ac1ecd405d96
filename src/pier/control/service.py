"""The SageMaker hosting rules: what may be created, updated, described and deleted.

Input has already passed the service model's shape validation (pier.contract.sagemaker); this
module applies the rules that need state (existence, duplicates, lifecycles) and answers with
SageMaker's output shapes. It never touches processes: it records desired state and nudges the
reconciler, which alone acts on the outside world.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pier.control.arns import ArnFactory
from pier.control.status import EndpointStatus
from pier.errors import ValidationException
from pier.hosting.image_map import is_mlflow_image
from pier.storage import location_problem
from pier.store.tables import EndpointConfigRow, EndpointRow, ModelRow, TagRow

DEFAULT_IMAGE = "pier/mlflow-pyfunc"
REGISTRY_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


@dataclass
class VariantLive:
    """What runs for one variant right now (the reconciler's view)."""

    current_weight: float
    current_instance_count: int
    statuses: list[dict[str, Any]] = field(default_factory=list)
    model_uris: list[str] = field(default_factory=list)  # what the instances loaded


class LiveView(Protocol):
    def variants(self, endpoint: str) -> dict[str, VariantLive]: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _epoch(ts: datetime) -> float:
    if ts.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        ts = ts.replace(tzinfo=UTC)
    return ts.timestamp()


def _without(request: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k not in keys}


def containers(model_request: dict[str, Any]) -> list[dict[str, Any]]:
    if "PrimaryContainer" in model_request:
        return [model_request["PrimaryContainer"]]
    return list(model_request.get("Containers", []))


def _page_token(after: list[Any]) -> str:
    """An opaque token holding the sort key of the last item served."""
    return base64.urlsafe_b64encode(orjson.dumps(after)).decode()


def _page_after(token: str | None) -> list[Any] | None:
    if not token:
        return None
    try:
        after = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(after, list):
            raise ValueError
        return after
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise ValidationException("Invalid pagination token given.") from None


class HostingService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        arns: ArnFactory,
        *,
        check_image: Callable[[str | None], str | None],
        live: LiveView,
        notify: Callable[[], None],
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._sessions = sessions
        self.arns = arns
        self._check_image = check_image  # an error message when no backend can run the image
        self._live = live
        self._notify = notify
        self._clock = clock

    @contextmanager
    def _creating(self, duplicate: str) -> Iterator[Session]:
        """A transaction that creates a resource: a unique-key clash with a concurrent create
        of the same name (or of a name differing only in case: one ARN) is the duplicate
        error, not a 500."""
        try:
            with self._sessions.begin() as s:
                yield s
        except IntegrityError:
            raise ValidationException(duplicate) from None

    # ---------------------------------------------------------------------------- models
    def create_model(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["ModelName"]
        arn = self.arns.model(name)
        specs = containers(req)
        if not specs:
            raise ValidationException("Either PrimaryContainer or Containers must be specified.")
        if "PrimaryContainer" in req and "Containers" in req:
            raise ValidationException(
                "Only one of PrimaryContainer or Containers may be specified."
            )
        for i, container in enumerate(specs):
            problem = self._check_image(container.get("Image"))
            if problem:
                raise ValidationException(f"Container {i + 1}: {problem}")
            source = container.get("ModelDataSource", {}).get("S3DataSource", {}).get("S3Uri")
            # An MLflow model is served from its model data; another image may hold its model
            # (SageMaker allows a container without model data).
            if (
                not container.get("ModelDataUrl")
                and not source
                and is_mlflow_image(container.get("Image"))
            ):
                raise ValidationException(
                    f"Container {i + 1}: pier needs the model: set ModelDataUrl (an MLflow model "
                    "URI, a path, or an s3:// / https:// model.tar.gz) or ModelDataSource, or "
                    "name an Image that holds the model."
                )
        duplicate = f'Cannot create already existing model "{arn}".'
        with self._creating(duplicate) as s:
            if s.scalar(select(ModelRow.name).where(ModelRow.arn == arn)) is not None:
                raise ValidationException(duplicate)
            s.add(
                ModelRow(
                    name=name, arn=arn, created_at=self._clock(), request=_without(req, "Tags")
                )
            )
            self._put_tags(s, arn, req.get("Tags", []))
        return {"ModelArn": arn}

    def _model(self, s: Session, name: str) -> ModelRow:
        row = s.get(ModelRow, name)
        if row is None:
            raise ValidationException(f'Could not find model "{self.arns.model(name)}".')
        return row

    def describe_model(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions() as s:
            row = self._model(s, req["ModelName"])
            return {**row.request, "ModelArn": row.arn, "CreationTime": _epoch(row.created_at)}

    def delete_model(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions.begin() as s:
            row = self._model(s, req["ModelName"])
            self._drop_tags(s, row.arn)
            s.delete(row)
        return {}

    def list_models(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions() as s:
            rows = list(s.scalars(select(ModelRow)))
        page, token = self._page(rows, req, name=lambda r: r.name, status=None)
        items = [
            {"ModelName": r.name, "ModelArn": r.arn, "CreationTime": _epoch(r.created_at)}
            for r in page
        ]
        return {"Models": items, **({"NextToken": token} if token else {})}

    # ------------------------------------------------------------------- endpoint configs
    def create_endpoint_config(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["EndpointConfigName"]
        arn = self.arns.endpoint_config(name)
        variants = req["ProductionVariants"] + req.get("ShadowProductionVariants", [])
        names = [v["VariantName"] for v in variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValidationException(
                f"The variant name(s) {', '.join(duplicates)} are not unique within the "
                f'endpoint configuration "{arn}".'
            )
        capture = req.get("DataCaptureConfig")
        if capture is not None:
            problem = location_problem(capture["DestinationS3Uri"])
            if problem:
                raise ValidationException(problem)
        duplicate = f'Cannot create already existing endpoint configuration "{arn}".'
        with self._creating(duplicate) as s:
            if s.scalar(select(EndpointConfigRow.name).where(EndpointConfigRow.arn == arn)):
                raise ValidationException(duplicate)
            for variant in variants:
                if "ServerlessConfig" not in variant and "InitialInstanceCount" not in variant:
                    raise ValidationException(
                        f"Variant {variant['VariantName']}: InitialInstanceCount is required "
                        "for a provisioned variant (or set ServerlessConfig)."
                    )
                model = variant.get("ModelName")
                if model is None:
                    raise ValidationException(
                        f"Variant {variant['VariantName']}: ModelName is required."
                    )
                self._model(s, model)
            s.add(
                EndpointConfigRow(
                    name=name, arn=arn, created_at=self._clock(), request=_without(req, "Tags")
                )
            )
            self._put_tags(s, arn, req.get("Tags", []))
        return {"EndpointConfigArn": arn}

    def _config(self, s: Session, name: str) -> EndpointConfigRow:
        row = s.get(EndpointConfigRow, name)
        if row is None:
            arn = self.arns.endpoint_config(name)
            raise ValidationException(f'Could not find endpoint configuration "{arn}".')
        return row

    def describe_endpoint_config(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions() as s:
            row = self._config(s, req["EndpointConfigName"])
            out = {**row.request, "EndpointConfigArn": row.arn}
            out["CreationTime"] = _epoch(row.created_at)
            return out

    def delete_endpoint_config(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions.begin() as s:
            row = self._config(s, req["EndpointConfigName"])
            self._drop_tags(s, row.arn)
            s.delete(row)
        return {}

    def list_endpoint_configs(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions() as s:
            rows = list(s.scalars(select(EndpointConfigRow)))
        page, token = self._page(rows, req, name=lambda r: r.name, status=None)
        items = [
            {
                "EndpointConfigName": r.name,
                "EndpointConfigArn": r.arn,
                "CreationTime": _epoch(r.created_at),
            }
            for r in page
        ]
        return {"EndpointConfigs": items, **({"NextToken": token} if token else {})}

    # -------------------------------------------------------------------------- endpoints
    def _snapshot(self, s: Session, config_name: str) -> dict[str, Any]:
        """The configuration and its models as they are now: what the endpoint will run."""
        config = self._config(s, config_name)
        variants = config.request["ProductionVariants"]
        variants += config.request.get("ShadowProductionVariants", [])
        models = {v["ModelName"]: self._model(s, v["ModelName"]).request for v in variants}
        return {"config": config.request, "models": models}

    @staticmethod
    def _desired(snapshot: dict[str, Any]) -> dict[str, Any]:
        return {
            v["VariantName"]: {
                "DesiredWeight": float(v.get("InitialVariantWeight", 1.0)),
                "DesiredInstanceCount": int(v.get("InitialInstanceCount", 1)),
            }
            for v in snapshot["config"]["ProductionVariants"]
        }

    def create_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["EndpointName"]
        arn = self.arns.endpoint(name)
        duplicate = f'Cannot create already existing endpoint "{arn}".'
        with self._creating(duplicate) as s:
            if s.scalar(select(EndpointRow.name).where(EndpointRow.arn == arn)) is not None:
                raise ValidationException(duplicate)
            snapshot = self._snapshot(s, req["EndpointConfigName"])
            now = self._clock()
            s.add(
                EndpointRow(
                    name=name,
                    arn=arn,
                    status=EndpointStatus.CREATING,
                    created_at=now,
                    last_modified_at=now,
                    config_name=req["EndpointConfigName"],
                    deployed=snapshot,
                    fleet=f"{req['EndpointConfigName']}@1",
                    desired=self._desired(snapshot),
                    generation=1,
                    deployment_config=req.get("DeploymentConfig"),
                )
            )
            self._put_tags(s, arn, req.get("Tags", []))
        self._notify()
        return {"EndpointArn": arn}

    def _endpoint(self, s: Session, name: str) -> EndpointRow:
        row = s.get(EndpointRow, name)
        if row is None:
            raise ValidationException(f'Could not find endpoint "{self.arns.endpoint(name)}".')
        return row

    def describe_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions() as s:
            row = self._endpoint(s, req["EndpointName"])
        live = self._live.variants(row.name)
        out: dict[str, Any] = {
            "EndpointName": row.name,
            "EndpointArn": row.arn,
            "EndpointConfigName": row.config_name,
            "EndpointStatus": row.status,
            "CreationTime": _epoch(row.created_at),
            "LastModifiedTime": _epoch(row.last_modified_at),
        }
        if row.failure_reason:
            out["FailureReason"] = row.failure_reason
        config = row.deployed["config"]
        variants = []
        for v in config["ProductionVariants"]:
            vname = v["VariantName"]
            desired = row.desired.get(vname, {})
            now = live.get(vname)
            summary: dict[str, Any] = {
                "VariantName": vname,
                "DeployedImages": self._images(row, v, now.model_uris if now else []),
                "CurrentWeight": now.current_weight if now else 0.0,
                "DesiredWeight": desired.get("DesiredWeight", 0.0),
                "CurrentInstanceCount": now.current_instance_count if now else 0,
                "DesiredInstanceCount": desired.get("DesiredInstanceCount", 0),
            }
            # The reconciler's task may still be draining the old fleet after the endpoint is
            # InService again: the variant's own change is over by then.
            if now and now.statuses and row.status != EndpointStatus.IN_SERVICE:
                summary["VariantStatus"] = now.statuses
            variants.append(summary)
        out["ProductionVariants"] = variants
        if "DataCaptureConfig" in config:
            # What the deployed config captures (an UpdateEndpoint changes it once the new
            # fleet takes the traffic, as the route does).
            dcc = config["DataCaptureConfig"]
            enabled = bool(dcc.get("EnableCapture", True))
            out["DataCaptureConfig"] = {
                "EnableCapture": enabled,
                "CaptureStatus": "Started" if enabled else "Stopped",
                "CurrentSamplingPercentage": dcc.get("InitialSamplingPercentage", 0),
                "DestinationS3Uri": dcc.get("DestinationS3Uri", ""),
            }
            if dcc.get("KmsKeyId"):
                out["DataCaptureConfig"]["KmsKeyId"] = dcc["KmsKeyId"]
        if row.deployment_config:
            out["LastDeploymentConfig"] = row.deployment_config
        if row.pending is not None and row.pending_config_name:
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": row.pending_config_name,
                "ProductionVariants": [
                    {
                        "VariantName": v["VariantName"],
                        "DesiredWeight": float(v.get("InitialVariantWeight", 1.0)),
                        "DesiredInstanceCount": int(v.get("InitialInstanceCount", 1)),
                    }
                    for v in row.pending["config"]["ProductionVariants"]
                ],
                "StartTime": _epoch(row.last_modified_at),
            }
        return out

    def _images(
        self, row: EndpointRow, variant: dict[str, Any], model_uris: list[str]
    ) -> list[dict[str, Any]]:
        """SageMaker resolves an image tag to a digest (`repo@sha256:...`); pier's instances
        resolve a registry reference to a version, shown the same way: ResolvedImage is
        `pier/mlflow-pyfunc@models:/diabetes/3` for a variant deployed from
        `models:/diabetes@champion`."""
        model = row.deployed["models"].get(variant["ModelName"], {})
        out = []
        for i, c in enumerate(containers(model)):
            image = c.get("Image") or DEFAULT_IMAGE
            registry = [u for u in model_uris if u.startswith(REGISTRY_SCHEMES)] if i == 0 else []
            out.append(
                {
                    "SpecifiedImage": image,
                    "ResolvedImage": f"{image}@{','.join(registry)}" if registry else image,
                    "ResolutionTime": _epoch(row.last_modified_at),
                }
            )
        return out

    def list_endpoints(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions() as s:
            rows = list(s.scalars(select(EndpointRow)))
        if req.get("StatusEquals"):
            rows = [r for r in rows if r.status == req["StatusEquals"]]
        for key, attr, before in (
            ("LastModifiedTimeBefore", "last_modified_at", True),
            ("LastModifiedTimeAfter", "last_modified_at", False),
        ):
            if key in req:
                bound = float(req[key])
                rows = [
                    r
                    for r in rows
                    if (_epoch(getattr(r, attr)) < bound) == before
                    and _epoch(getattr(r, attr)) != bound
                ]
        page, token = self._page(rows, req, name=lambda r: r.name, status=lambda r: r.status)
        items = [
            {
                "EndpointName": r.name,
                "EndpointArn": r.arn,
                "CreationTime": _epoch(r.created_at),
                "LastModifiedTime": _epoch(r.last_modified_at),
                "EndpointStatus": r.status,
            }
            for r in page
        ]
        return {"Endpoints": items, **({"NextToken": token} if token else {})}

    def update_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["EndpointName"]
        with self._sessions.begin() as s:
            row = self._endpoint(s, name)
            if row.status != EndpointStatus.IN_SERVICE:
                verb = "failed" if row.status == EndpointStatus.FAILED else "in-progress"
                raise ValidationException(f'Cannot update {verb} endpoint "{row.arn}".')
            snapshot = self._snapshot(s, req["EndpointConfigName"])
            desired = self._desired(snapshot)
            if req.get("RetainAllVariantProperties"):
                excluded = {
                    p["VariantPropertyType"]
                    for p in req.get("ExcludeRetainedVariantProperties", [])
                }
                for vname, values in desired.items():
                    old = row.desired.get(vname)
                    if old is None:
                        continue
                    if "DesiredWeight" not in excluded:
                        values["DesiredWeight"] = old["DesiredWeight"]
                    if "DesiredInstanceCount" not in excluded:
                        values["DesiredInstanceCount"] = old["DesiredInstanceCount"]
            row.status = EndpointStatus.UPDATING
            row.pending = {**snapshot, "desired": desired}
            row.pending_config_name = req["EndpointConfigName"]
            row.failure_reason = None
            row.generation += 1
            row.last_modified_at = self._clock()
            if req.get("DeploymentConfig") is not None or not req.get("RetainDeploymentConfig"):
                row.deployment_config = req.get("DeploymentConfig")
        self._notify()
        return {"EndpointArn": self.arns.endpoint(name)}

    def update_endpoint_weights_and_capacities(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["EndpointName"]
        with self._sessions.begin() as s:
            row = self._endpoint(s, name)
            if row.status != EndpointStatus.IN_SERVICE:
                raise ValidationException(f'Cannot update in-progress endpoint "{row.arn}".')
            wanted = req["DesiredWeightsAndCapacities"]
            names = [w["VariantName"] for w in wanted]
            for n in names:
                if names.count(n) > 1:
                    raise ValidationException(
                        f'The variant name "{n}" was non-unique within the request.'
                    )
            missing = [n for n in names if n not in row.desired]
            if missing:
                raise ValidationException(
                    f'The variant name(s) "{", ".join(missing)}" is/are not present within '
                    f'endpoint configuration "{row.config_name}".'
                )
            desired = {k: dict(v) for k, v in row.desired.items()}
            for w in wanted:
                if "DesiredWeight" in w:
                    desired[w["VariantName"]]["DesiredWeight"] = float(w["DesiredWeight"])
                if "DesiredInstanceCount" in w:
                    count = int(w["DesiredInstanceCount"])
                    desired[w["VariantName"]]["DesiredInstanceCount"] = count
            if sum(v["DesiredWeight"] for v in desired.values()) <= 0:
                raise ValidationException(
                    "The sum of the DesiredWeight values of all variants must be greater than 0."
                )
            row.desired = desired
            row.status = EndpointStatus.UPDATING
            row.failure_reason = None
            row.generation += 1
            row.last_modified_at = self._clock()
        self._notify()
        return {"EndpointArn": self.arns.endpoint(name)}

    def delete_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions.begin() as s:
            row = self._endpoint(s, req["EndpointName"])
            if row.status == EndpointStatus.DELETING:
                return {}
            row.status = EndpointStatus.DELETING
            row.generation += 1
            row.last_modified_at = self._clock()
            self._drop_tags(s, row.arn)
        self._notify()
        return {}

    # ------------------------------------------------------------------------------- tags
    def _resource_exists(self, s: Session, arn: str) -> bool:
        for table in (ModelRow, EndpointConfigRow, EndpointRow):
            if s.scalar(select(table.name).where(table.arn == arn)) is not None:
                return True
        return False

    def _require_resource(self, s: Session, arn: str) -> None:
        if not self.arns.owns(arn) or not self._resource_exists(s, arn):
            raise ValidationException(f'Could not find resource "{arn}".')

    def _put_tags(self, s: Session, arn: str, tags: Iterable[dict[str, str]]) -> None:
        for tag in tags:
            existing = s.scalar(select(TagRow).where(TagRow.arn == arn, TagRow.key == tag["Key"]))
            if existing is None:
                s.add(TagRow(arn=arn, key=tag["Key"], value=tag.get("Value", "")))
            else:
                existing.value = tag.get("Value", "")
        s.flush()
        count = len(list(s.scalars(select(TagRow.id).where(TagRow.arn == arn))))
        if count > 50:
            raise ValidationException("A resource can have at most 50 tags.")

    def _drop_tags(self, s: Session, arn: str) -> None:
        for tag in s.scalars(select(TagRow).where(TagRow.arn == arn)):
            s.delete(tag)

    def add_tags(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions.begin() as s:
            self._require_resource(s, req["ResourceArn"])
            self._put_tags(s, req["ResourceArn"], req["Tags"])
            tags = s.scalars(select(TagRow).where(TagRow.arn == req["ResourceArn"]))
            return {"Tags": [{"Key": t.key, "Value": t.value} for t in tags]}

    def list_tags(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions() as s:
            self._require_resource(s, req["ResourceArn"])
            rows = list(
                s.scalars(
                    select(TagRow).where(TagRow.arn == req["ResourceArn"]).order_by(TagRow.id)
                )
            )
        after = _page_after(req.get("NextToken"))
        if after is not None:
            rows = [t for t in rows if [t.id] > after]
        size = int(req.get("MaxResults", 50))
        page = rows[:size]
        out: dict[str, Any] = {"Tags": [{"Key": t.key, "Value": t.value} for t in page]}
        if len(rows) > size:
            out["NextToken"] = _page_token([page[-1].id])
        return out

    def delete_tags(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._sessions.begin() as s:
            self._require_resource(s, req["ResourceArn"])
            for tag in s.scalars(
                select(TagRow).where(
                    TagRow.arn == req["ResourceArn"], TagRow.key.in_(req["TagKeys"])
                )
            ):
                s.delete(tag)
        return {}

    # ---------------------------------------------------------------------------- paging
    def _page(
        self,
        rows: list[Any],
        req: dict[str, Any],
        *,
        name: Callable[[Any], str],
        status: Callable[[Any], str] | None,
    ) -> tuple[list[Any], str | None]:
        """SageMaker's List* semantics: filter, sort (CreationTime, descending by default), page."""
        if req.get("NameContains"):
            needle = req["NameContains"].lower()
            rows = [r for r in rows if needle in name(r).lower()]
        if "CreationTimeBefore" in req:
            rows = [r for r in rows if _epoch(r.created_at) < float(req["CreationTimeBefore"])]
        if "CreationTimeAfter" in req:
            rows = [r for r in rows if _epoch(r.created_at) > float(req["CreationTimeAfter"])]
        sort_by = req.get("SortBy", "CreationTime")
        keys: dict[str, Callable[[Any], list[Any]]] = {
            "Name": lambda r: [name(r)],
            "CreationTime": lambda r: [_epoch(r.created_at), name(r)],
        }
        if status is not None:
            keys["Status"] = lambda r: [status(r), name(r)]
        key = keys[sort_by]
        descending = req.get("SortOrder", "Descending") == "Descending"
        rows.sort(key=key, reverse=descending)
        # Keyset paging: the token holds the last key served, so items deleted or created
        # between pages neither skip nor repeat the others (an offset would do both).
        after = _page_after(req.get("NextToken"))
        if after is not None:
            rows = [r for r in rows if (key(r) < after if descending else key(r) > after)]
        size = int(req.get("MaxResults", 10))
        page = rows[:size]
        token = _page_token(key(page[-1])) if len(rows) > size else None
        return page, token
