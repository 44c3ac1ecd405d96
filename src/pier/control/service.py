"""The SageMaker hosting rules: what may be created, updated, described and deleted.

Input has already passed the service model's shape validation (pier.contract.sagemaker); this
module applies the rules that need state (existence, duplicates, lifecycles) and answers with
SageMaker's output shapes. It never touches processes: it records desired state and nudges the
reconciler, which alone acts on the outside world.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pier.control import paging
from pier.control.arns import ArnFactory
from pier.control.deployment import (
    Deployment,
    LiveView,
    VariantPlan,
    containers,
    deployed,
    deployed_columns,
    pending,
    pending_columns,
)
from pier.control.rollout import Plan, PlanError, plan
from pier.control.status import EndpointStatus
from pier.errors import ResourceLimitExceeded, ValidationException
from pier.hosting.image_map import is_mlflow_image
from pier.storage import location_problem
from pier.store.alarms import AlarmStore
from pier.store.db import Duplicate, Sessions
from pier.store.hosting import MAX_TAGS, HostingStore, HostingTx, TooManyTags, deployment_history
from pier.store.tables import DeploymentRow, EndpointConfigRow, EndpointRow, ModelRow

DEFAULT_IMAGE = "pier/mlflow-pyfunc"
DEFAULT_MAX_INSTANCES = 32  # PlatformSettings.max_instances
REGISTRY_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


def _now() -> datetime:
    return datetime.now(UTC)


def _without(request: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k not in keys}


class HostingService:
    def __init__(
        self,
        sessions: Sessions,
        arns: ArnFactory,
        *,
        check_image: Callable[[str | None], str | None],
        live: LiveView,
        notify: Callable[[], None],
        clock: Callable[[], datetime] = _now,
        max_instances: int = DEFAULT_MAX_INSTANCES,
    ) -> None:
        self._sessions = sessions
        self._max_instances = max_instances  # the platform's quota (pier up --max-instances)
        self._store = HostingStore(sessions)
        self._alarms = AlarmStore(sessions)  # AutoRollbackConfiguration names existing alarms
        self.arns = arns
        self._check_image = check_image  # an error message when no backend can run the image
        self._live = live
        self._notify = notify
        self._clock = clock

    @contextmanager
    def _creating(self, duplicate: str) -> Iterator[HostingTx]:
        """A transaction that creates a resource: its ARN taken, or a unique-key clash with a
        concurrent create of the same name (or of a name differing only in case: one ARN), is
        the duplicate error, not a 500."""
        try:
            with self._writing() as tx:
                yield tx
        except Duplicate:
            raise ValidationException(duplicate) from None

    def _within_quota(self, tx: HostingTx, delta: int) -> None:
        """ResourceLimitExceeded, worded as SageMaker words its account-level limit, when
        `delta` more instances would take the platform past its quota. In use: every
        instance asked of an endpoint that is not being deleted or failed, both fleets of
        an update in progress (they run side by side until the traffic has moved)."""
        if delta <= 0:
            return
        used = 0
        for row in tx.endpoints():
            if row.status in (EndpointStatus.DELETING, EndpointStatus.FAILED):
                continue
            used += sum(v.instance_count for v in deployed(row).plans)
            update = pending(row)
            if update is not None:
                used += sum(v.instance_count for v in update.plans)
        if used + delta > self._max_instances:
            raise ResourceLimitExceeded(
                "The account-level service limit 'instances for endpoint usage' is "
                f"{self._max_instances} Instances, with current utilization of {used} "
                f"Instances and a request delta of {delta} Instances. Start the platform with "
                "a higher quota (pier up --max-instances, PIER_MAX_INSTANCES) or delete "
                "endpoints to make room."
            )

    @contextmanager
    def _writing(self) -> Iterator[HostingTx]:
        """A transaction that changes rows."""
        try:
            with self._store.begin() as tx:
                yield tx
        except TooManyTags:
            raise ValidationException(f"A resource can have at most {MAX_TAGS} tags.") from None

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
        with self._creating(duplicate) as tx:
            if tx.taken(ModelRow, arn):
                raise ValidationException(duplicate)
            tx.add(
                ModelRow(
                    name=name, arn=arn, created_at=self._clock(), request=_without(req, "Tags")
                ),
                req.get("Tags", []),
            )
        return {"ModelArn": arn}

    def _model(self, tx: HostingTx, name: str) -> ModelRow:
        row = tx.model(name)
        if row is None:
            raise ValidationException(f'Could not find model "{self.arns.model(name)}".')
        return row

    def describe_model(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            row = self._model(tx, req["ModelName"])
            return {**row.request, "ModelArn": row.arn, "CreationTime": row.created_at.timestamp()}

    def delete_model(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._writing() as tx:
            tx.delete(self._model(tx, req["ModelName"]))
        return {}

    def list_models(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            rows = tx.models()
        page = self._page(rows, req, name=lambda r: r.name, status=None)
        items = [
            {"ModelName": r.name, "ModelArn": r.arn, "CreationTime": r.created_at.timestamp()}
            for r in page.items
        ]
        return {"Models": items, **page.token_field()}

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
        shadows = req.get("ShadowProductionVariants", [])
        if shadows and (len(shadows) > 1 or len(req["ProductionVariants"]) != 1):
            raise ValidationException(
                "An endpoint configuration with ShadowProductionVariants must have exactly one "
                "production variant and at most one shadow variant."
            )
        capture = req.get("DataCaptureConfig")
        if capture is not None:
            problem = location_problem(capture["DestinationS3Uri"])
            if problem:
                raise ValidationException(problem)
        duplicate = f'Cannot create already existing endpoint configuration "{arn}".'
        with self._creating(duplicate) as tx:
            if tx.taken(EndpointConfigRow, arn):
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
                self._model(tx, model)
            tx.add(
                EndpointConfigRow(
                    name=name, arn=arn, created_at=self._clock(), request=_without(req, "Tags")
                ),
                req.get("Tags", []),
            )
        return {"EndpointConfigArn": arn}

    def _config(self, tx: HostingTx, name: str) -> EndpointConfigRow:
        row = tx.config(name)
        if row is None:
            arn = self.arns.endpoint_config(name)
            raise ValidationException(f'Could not find endpoint configuration "{arn}".')
        return row

    def describe_endpoint_config(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            row = self._config(tx, req["EndpointConfigName"])
            out = {**row.request, "EndpointConfigArn": row.arn}
            out["CreationTime"] = row.created_at.timestamp()
            return out

    def delete_endpoint_config(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._writing() as tx:
            tx.delete(self._config(tx, req["EndpointConfigName"]))
        return {}

    def list_endpoint_configs(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            rows = tx.configs()
        page = self._page(rows, req, name=lambda r: r.name, status=None)
        items = [
            {
                "EndpointConfigName": r.name,
                "EndpointConfigArn": r.arn,
                "CreationTime": r.created_at.timestamp(),
            }
            for r in page.items
        ]
        return {"EndpointConfigs": items, **page.token_field()}

    # -------------------------------------------------------------------------- endpoints
    def _deployment(self, tx: HostingTx, config_name: str, generation: int) -> Deployment:
        """The configuration and its models as they are now: what the endpoint will run."""
        config = self._config(tx, config_name).request
        variants = config["ProductionVariants"] + config.get("ShadowProductionVariants", [])
        models = {v["ModelName"]: self._model(tx, v["ModelName"]).request for v in variants}
        return Deployment.from_requests(config_name, generation, config, models)

    def create_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["EndpointName"]
        arn = self.arns.endpoint(name)
        duplicate = f'Cannot create already existing endpoint "{arn}".'
        with self._creating(duplicate) as tx:
            if tx.taken(EndpointRow, arn):
                raise ValidationException(duplicate)
            deployment = self._deployment(tx, req["EndpointConfigName"], generation=1)
            self._within_quota(tx, sum(v.instance_count for v in deployment.plans))
            now = self._clock()
            tx.add(
                EndpointRow(
                    name=name,
                    arn=arn,
                    status=EndpointStatus.CREATING,
                    created_at=now,
                    last_modified_at=now,
                    **deployed_columns(deployment),
                    generation=deployment.generation,
                    deployment_config=req.get("DeploymentConfig"),
                ),
                req.get("Tags", []),
            )
        self._notify()
        return {"EndpointArn": arn}

    def _endpoint(self, tx: HostingTx, name: str) -> EndpointRow:
        row = tx.endpoint(name)
        if row is None:
            raise ValidationException(f'Could not find endpoint "{self.arns.endpoint(name)}".')
        return row

    def describe_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            row = self._endpoint(tx, req["EndpointName"])
        live = self._live.variants(row.name)
        out: dict[str, Any] = {
            "EndpointName": row.name,
            "EndpointArn": row.arn,
            "EndpointConfigName": row.config_name,
            "EndpointStatus": row.status,
            "CreationTime": row.created_at.timestamp(),
            "LastModifiedTime": row.last_modified_at.timestamp(),
        }
        if row.failure_reason:
            out["FailureReason"] = row.failure_reason
        deployment = deployed(row)
        variants = []
        shadows = []
        for v in deployment.plans:
            now = live.get(v.name)
            summary: dict[str, Any] = {
                "VariantName": v.name,
                "DeployedImages": self._images(row, v, now.model_uris if now else []),
                "CurrentWeight": now.current_weight if now else 0.0,
                "DesiredWeight": v.weight,
                "CurrentInstanceCount": now.current_instance_count if now else 0,
                "DesiredInstanceCount": v.instance_count,
            }
            # The reconciler's task may still be draining the old fleet after the endpoint is
            # InService again: the variant's own change is over by then.
            if now and now.statuses and row.status != EndpointStatus.IN_SERVICE:
                summary["VariantStatus"] = now.statuses
            if v in deployment.shadow_variants:
                if now:  # the route holds the share of copies; the weight is the config's
                    summary["CurrentWeight"] = v.weight
                shadows.append(summary)
            else:
                variants.append(summary)
        out["ProductionVariants"] = variants
        if shadows:
            out["ShadowProductionVariants"] = shadows
        if deployment.data_capture is not None:
            # What the deployed config captures (an UpdateEndpoint changes it once the new
            # fleet takes the traffic, as the route does).
            dcc = deployment.data_capture
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
        update = pending(row)
        if update is not None:
            # While a guarded update shifts traffic: the new fleet's share (CurrentWeight is
            # its weight times the step's share), healthy instances and step (VariantStatus).
            shifting = self._live.pending_variants(row.name)
            pending_variants = []
            for v in update.variants:
                item: dict[str, Any] = {
                    "VariantName": v.name,
                    "DesiredWeight": v.weight,
                    "DesiredInstanceCount": v.instance_count,
                }
                now = shifting.get(v.name)
                if now is not None:
                    item["CurrentWeight"] = now.current_weight
                    item["CurrentInstanceCount"] = now.current_instance_count
                    item["VariantStatus"] = now.statuses
                pending_variants.append(item)
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": update.config_name,
                "ProductionVariants": pending_variants,
                "StartTime": row.last_modified_at.timestamp(),
            }
        return out

    def _images(
        self, row: EndpointRow, variant: VariantPlan, model_uris: list[str]
    ) -> list[dict[str, Any]]:
        """SageMaker resolves an image tag to a digest (`repo@sha256:...`); pier's instances
        resolve a registry reference to a version, shown the same way: ResolvedImage is
        `pier/mlflow-pyfunc@models:/diabetes/3` for a variant deployed from
        `models:/diabetes@champion`."""
        out = []
        for i, c in enumerate(variant.containers):
            image = c.get("Image") or DEFAULT_IMAGE
            registry = [u for u in model_uris if u.startswith(REGISTRY_SCHEMES)] if i == 0 else []
            out.append(
                {
                    "SpecifiedImage": image,
                    "ResolvedImage": f"{image}@{','.join(registry)}" if registry else image,
                    "ResolutionTime": row.last_modified_at.timestamp(),
                }
            )
        return out

    def list_endpoints(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            rows = tx.endpoints()
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
                    if (getattr(r, attr).timestamp() < bound) == before
                    and getattr(r, attr).timestamp() != bound
                ]
        page = self._page(rows, req, name=lambda r: r.name, status=lambda r: r.status)
        items = [
            {
                "EndpointName": r.name,
                "EndpointArn": r.arn,
                "CreationTime": r.created_at.timestamp(),
                "LastModifiedTime": r.last_modified_at.timestamp(),
                "EndpointStatus": r.status,
            }
            for r in page.items
        ]
        return {"Endpoints": items, **page.token_field()}

    def update_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["EndpointName"]
        with self._writing() as tx:
            row = self._endpoint(tx, name)
            if row.status == EndpointStatus.UPDATE_ROLLBACK_FAILED:
                raise ValidationException(
                    f'Cannot update endpoint "{row.arn}" in UpdateRollbackFailed (its last '
                    "update could not be rolled back: see FailureReason); delete it and create "
                    "it again."
                )
            if row.status != EndpointStatus.IN_SERVICE:
                verb = "failed" if row.status == EndpointStatus.FAILED else "in-progress"
                raise ValidationException(f'Cannot update {verb} endpoint "{row.arn}".')
            # The new fleet's generation: the one this change gives the endpoint.
            update = self._deployment(tx, req["EndpointConfigName"], row.generation + 1)
            if req.get("RetainAllVariantProperties"):
                excluded = {
                    p["VariantPropertyType"]
                    for p in req.get("ExcludeRetainedVariantProperties", [])
                }
                current = deployed(row)
                retained = []
                for v in update.variants:
                    old = current.variant(v.name)
                    if old is not None and "DesiredWeight" not in excluded:
                        v = replace(v, weight=old.weight)
                    if old is not None and "DesiredInstanceCount" not in excluded:
                        v = replace(v, instance_count=old.instance_count)
                    retained.append(v)
                update = update.with_variants(tuple(retained))
            config = row.deployment_config
            if req.get("DeploymentConfig") is not None or not req.get("RetainDeploymentConfig"):
                config = req.get("DeploymentConfig")
            steps = self._plan(config, deployed(row), update)
            # The new fleet comes up beside the old one.
            self._within_quota(tx, sum(v.instance_count for v in update.plans))
            now = self._clock()
            row.status = EndpointStatus.UPDATING
            for column, value in pending_columns(update).items():
                setattr(row, column, value)
            row.failure_reason = None
            row.generation = update.generation
            row.last_modified_at = now
            row.deployment_config = config
            tx.add_deployment(
                DeploymentRow(
                    endpoint_name=row.name,
                    generation=update.generation,
                    from_config=row.config_name,
                    to_config=update.config_name,
                    policy=str(steps.policy),
                    deployment_config=config,
                    plan=steps.to_json(),
                    status="InProgress",
                    step=-1,
                    share=0.0,
                    started_at=now,
                )
            )
        self._notify()
        return {"EndpointArn": self.arns.endpoint(name)}

    def _plan(self, config: dict[str, Any] | None, old: Deployment, new: Deployment) -> Plan:
        """The rollout plan of an update (pier.control.rollout), or the ValidationException
        SageMaker answers for a DeploymentConfig that cannot run here."""
        try:
            steps = plan(
                config,
                {v.name: v.instance_count for v in old.variants},
                {v.name: v.instance_count for v in new.variants},
            )
        except PlanError as exc:
            raise ValidationException(str(exc)) from None
        missing = [a for a in steps.alarms if self._alarms.get(a) is None]
        if missing:
            raise ValidationException(
                "DeploymentConfig.AutoRollbackConfiguration.Alarms: no CloudWatch alarm named "
                f"{', '.join(repr(m) for m in missing)}: create it with PutMetricAlarm first."
            )
        return steps

    def deployments(self, endpoint: str, limit: int = 5) -> dict[str, Any]:
        """pier's deployment history of an endpoint (GET /pier/endpoints/NAME/deployments):
        its latest `limit` updates, newest first, each with its policy, steps, outcome and
        reason; the one in progress also with its step, share on the new fleet, seconds to
        the next step and the alarms watched. ValidationException for an unknown endpoint."""
        with self._store.read() as tx:
            row = self._endpoint(tx, endpoint)
        now = self._clock().timestamp()
        items = []
        for d in deployment_history(self._sessions, row.name, limit):
            steps = d.plan.get("Steps", [])
            item: dict[str, Any] = {
                "FromConfig": d.from_config,
                "ToConfig": d.to_config,
                "Policy": d.policy,
                "Status": d.status,
                "Step": d.step + 1,  # 0: the new fleet is being launched
                "Steps": len(steps),
                "StepLabel": steps[d.step]["Label"] if 0 <= d.step < len(steps) else None,
                "Share": d.share,
                "Alarms": d.plan.get("Alarms", []),
                "Plan": d.plan,
                "DeploymentConfig": d.deployment_config,
                "StartTime": d.started_at.timestamp(),
                "EndTime": d.ended_at.timestamp() if d.ended_at else None,
                "Reason": d.reason,
            }
            if d.status == "InProgress" and d.step_started_at and 0 <= d.step < len(steps):
                ends = d.step_started_at.timestamp() + steps[d.step]["BakeSeconds"]
                item["NextStepInSeconds"] = max(0.0, ends - now)
            items.append(item)
        return {"EndpointName": row.name, "Deployments": items}

    def update_endpoint_weights_and_capacities(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["EndpointName"]
        with self._writing() as tx:
            row = self._endpoint(tx, name)
            if row.status != EndpointStatus.IN_SERVICE:
                raise ValidationException(f'Cannot update in-progress endpoint "{row.arn}".')
            wanted = req["DesiredWeightsAndCapacities"]
            names = [w["VariantName"] for w in wanted]
            for n in names:
                if names.count(n) > 1:
                    raise ValidationException(
                        f'The variant name "{n}" was non-unique within the request.'
                    )
            current = deployed(row)
            missing = [n for n in names if current.variant(n) is None]
            if missing:
                raise ValidationException(
                    f'The variant name(s) "{", ".join(missing)}" is/are not present within '
                    f'endpoint configuration "{row.config_name}".'
                )
            asked = {w["VariantName"]: w for w in wanted}
            variants = []
            for v in current.variants:
                w = asked.get(v.name, {})
                if "DesiredWeight" in w:
                    v = replace(v, weight=float(w["DesiredWeight"]))
                if "DesiredInstanceCount" in w:
                    v = replace(v, instance_count=int(w["DesiredInstanceCount"]))
                variants.append(v)
            if sum(v.weight for v in variants) <= 0:
                raise ValidationException(
                    "The sum of the DesiredWeight values of all variants must be greater than 0."
                )
            before = sum(v.instance_count for v in current.variants)
            self._within_quota(tx, sum(v.instance_count for v in variants) - before)
            # The same fleet (same label) with other weights and counts.
            for column, value in deployed_columns(current.with_variants(tuple(variants))).items():
                setattr(row, column, value)
            row.status = EndpointStatus.UPDATING
            row.failure_reason = None
            row.generation += 1
            row.last_modified_at = self._clock()
        self._notify()
        return {"EndpointArn": self.arns.endpoint(name)}

    def delete_endpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._writing() as tx:
            row = self._endpoint(tx, req["EndpointName"])
            if row.status == EndpointStatus.DELETING:
                return {}
            row.status = EndpointStatus.DELETING
            row.generation += 1
            row.last_modified_at = self._clock()
            tx.drop_tags(row.arn)
        self._notify()
        return {}

    # ------------------------------------------------------------------------------- tags
    def _require_resource(self, tx: HostingTx, arn: str) -> None:
        if not self.arns.owns(arn) or not tx.resource_exists(arn):
            raise ValidationException(f'Could not find resource "{arn}".')

    def add_tags(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._writing() as tx:
            self._require_resource(tx, req["ResourceArn"])
            tx.put_tags(req["ResourceArn"], req["Tags"])
            tags = tx.tags(req["ResourceArn"])
            return {"Tags": [{"Key": t.key, "Value": t.value} for t in tags]}

    def list_tags(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            self._require_resource(tx, req["ResourceArn"])
            rows = tx.tags(req["ResourceArn"])
        page = paging.sagemaker_page(
            rows, {**req, "SortOrder": "Ascending"}, lambda t: [t.id], default_size=MAX_TAGS
        )
        return {
            "Tags": [{"Key": t.key, "Value": t.value} for t in page.items],
            **page.token_field(),
        }

    def delete_tags(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._writing() as tx:
            self._require_resource(tx, req["ResourceArn"])
            tx.delete_tags(req["ResourceArn"], req["TagKeys"])
        return {}

    # ---------------------------------------------------------------------------- paging
    def _page(
        self,
        rows: list[Any],
        req: dict[str, Any],
        *,
        name: Callable[[Any], str],
        status: Callable[[Any], str] | None,
    ) -> paging.Page[Any]:
        """SageMaker's List* semantics: filter, sort (CreationTime, descending by default), page."""
        if req.get("NameContains"):
            needle = req["NameContains"].lower()
            rows = [r for r in rows if needle in name(r).lower()]
        if "CreationTimeBefore" in req:
            rows = [r for r in rows if r.created_at.timestamp() < float(req["CreationTimeBefore"])]
        if "CreationTimeAfter" in req:
            rows = [r for r in rows if r.created_at.timestamp() > float(req["CreationTimeAfter"])]
        sort_by = req.get("SortBy", "CreationTime")
        keys: dict[str, Callable[[Any], list[Any]]] = {
            "Name": lambda r: [name(r)],
            "CreationTime": lambda r: [r.created_at.timestamp(), name(r)],
        }
        if status is not None:
            keys["Status"] = lambda r: [status(r), name(r)]
        return paging.sagemaker_page(rows, req, keys[sort_by], default_size=10)
