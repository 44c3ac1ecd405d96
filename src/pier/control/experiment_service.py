"""SageMaker's shadow tests: Create/Describe/List/Start/StopInferenceExperiment (Type ShadowMode).

An experiment names an InService endpoint, its production variant (ShadowModeConfig's
SourceModelVariantName) and one shadow variant with its SamplingPercentage, each with a model
and instances (ModelVariants). Starting it deploys, through the same path as UpdateEndpoint
(a new endpoint configuration, blue/green), the production variant beside the shadow variant at
weight SamplingPercentage / 100 over the production's 1.0, which is SageMaker's share of copied
requests (pier.router.mirror), with data capture to DataStorageConfig's Destination. Stopping
it applies ModelVariantActions, again as an UpdateEndpoint:

- shadow Promote (production Remove): the production variant runs the shadow's model, on the
  shadow's instances (or DesiredModelVariants' for it); the shadow is gone;
- shadow Remove (production Retain): the production variant alone, as it ran in the experiment;
- shadow Retain (production Retain): the endpoint is left as it is (the shadow keeps its copies).

Statuses: Created (a Schedule.StartTime in the future; StartInferenceExperiment starts it),
Running, then Completed or Cancelled (StopInferenceExperiment's DesiredState). pier starts an
experiment at creation when its StartTime is absent or past; it does not stop one at its
EndTime by itself (docs/shadow.md says so).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pier.control import paging
from pier.control.arns import ArnFactory
from pier.control.service import HostingService
from pier.control.status import EndpointStatus
from pier.errors import ResourceNotFound, ValidationException
from pier.store.db import Duplicate, Sessions
from pier.store.experiments import ExperimentStore, ExperimentTx
from pier.store.hosting import HostingStore
from pier.store.tables import InferenceExperimentRow

CREATED, RUNNING, COMPLETED = "Created", "Running", "Completed"


def _now() -> datetime:
    return datetime.now(UTC)


def _variants(req: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["VariantName"]: v for v in req["ModelVariants"]}


def _shadow(req: dict[str, Any]) -> dict[str, Any]:
    shadow: dict[str, Any] = req["ShadowModeConfig"]["ShadowModelVariants"][0]
    return shadow


def _production_variant(
    name: str, config: dict[str, Any], weight: float = 1.0, model: str | None = None
) -> dict[str, Any]:
    """An endpoint config's variant from a ModelVariantConfig (its model unless `model`)."""
    infra = config["InfrastructureConfig"]["RealTimeInferenceConfig"]
    return {
        "VariantName": name,
        "ModelName": model or config["ModelName"],
        "InitialInstanceCount": infra["InstanceCount"],
        "InstanceType": infra["InstanceType"],
        "InitialVariantWeight": weight,
    }


class ExperimentService:
    def __init__(
        self,
        sessions: Sessions,
        arns: ArnFactory,
        hosting: HostingService,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._store = ExperimentStore(sessions)
        self._hosting_store = HostingStore(sessions)
        self._hosting = hosting
        self.arns = arns
        self._clock = clock

    @contextmanager
    def _creating(self, duplicate: str) -> Iterator[ExperimentTx]:
        try:
            with self._store.begin() as tx:
                yield tx
        except Duplicate:
            raise ValidationException(duplicate) from None

    def _experiment(self, tx: ExperimentTx, name: str) -> InferenceExperimentRow:
        row = tx.experiment(name)
        if row is None:
            arn = self.arns.inference_experiment(name)
            raise ResourceNotFound(f'Inference experiment "{arn}" does not exist.')
        return row

    # ------------------------------------------------------------------------ create
    def _not_busy(self, tx: ExperimentTx, endpoint: str) -> None:
        busy = tx.running_on(endpoint)
        if busy is not None:
            raise ValidationException(
                f"Endpoint {endpoint} already runs inference experiment {busy.name}: stop it first."
            )

    def _check(self, req: dict[str, Any]) -> None:
        """The rules that need more than the shapes: one shadow beside the source variant,
        both among ModelVariants, their models existing, the endpoint InService."""
        if req["Type"] != "ShadowMode":
            raise ValidationException(f"Type {req['Type']} is not supported: use ShadowMode.")
        names = [v["VariantName"] for v in req["ModelVariants"]]
        if len(set(names)) != len(names):
            raise ValidationException("ModelVariants: variant names must be unique.")
        mode = req["ShadowModeConfig"]
        source = mode["SourceModelVariantName"]
        shadows = [s["ShadowModelVariantName"] for s in mode["ShadowModelVariants"]]
        if len(shadows) != 1:
            raise ValidationException("ShadowModeConfig: exactly one shadow variant is allowed.")
        for role, name in (("Source", source), ("Shadow", shadows[0])):
            if name not in names:
                raise ValidationException(
                    f"ShadowModeConfig: {role} variant {name} is not among ModelVariants "
                    f"({', '.join(names)})."
                )
        if shadows[0] == source:
            raise ValidationException("The shadow variant must differ from the source variant.")
        if sorted(names) != sorted([source, *shadows]):
            raise ValidationException(
                "ModelVariants must list exactly the source variant and the shadow variant."
            )
        percentage = mode["ShadowModelVariants"][0]["SamplingPercentage"]
        if not 1 <= percentage <= 100:
            raise ValidationException("SamplingPercentage must be between 1 and 100.")
        schedule = req.get("Schedule", {})
        start, end = schedule.get("StartTime"), schedule.get("EndTime")
        if start is not None and end is not None and float(end) <= float(start):
            raise ValidationException("Schedule: EndTime must be after StartTime.")
        with self._store.read() as etx:
            self._not_busy(etx, req["EndpointName"])
        with self._hosting_store.read() as tx:
            endpoint = tx.endpoint(req["EndpointName"])
            if endpoint is None:
                arn = self.arns.endpoint(req["EndpointName"])
                raise ValidationException(f'Could not find endpoint "{arn}".')
            if endpoint.status != EndpointStatus.IN_SERVICE:
                raise ValidationException(
                    f"Endpoint {endpoint.name} is {endpoint.status}: an experiment needs it "
                    "InService."
                )
            for v in req["ModelVariants"]:
                if tx.model(v["ModelName"]) is None:
                    arn = self.arns.model(v["ModelName"])
                    raise ValidationException(f'Could not find model "{arn}".')

    def create_inference_experiment(self, req: dict[str, Any]) -> dict[str, Any]:
        self._check(req)
        name = req["Name"]
        arn = self.arns.inference_experiment(name)
        now = self._clock()
        schedule = dict(req.get("Schedule", {}))
        start = schedule.get("StartTime")
        starts_now = start is None or float(start) <= now.timestamp()
        duplicate = f'Inference experiment "{arn}" already exists.'
        with self._creating(duplicate) as tx:
            if tx.taken(arn):
                raise ValidationException(duplicate)
            self._not_busy(tx, req["EndpointName"])
            tx.add(
                InferenceExperimentRow(
                    name=name, arn=arn, status=CREATED, endpoint_name=req["EndpointName"],
                    created_at=now, last_modified_at=now,
                    request={k: v for k, v in req.items() if k != "Tags"},
                    schedule=schedule,
                )
            )  # fmt: skip
        if starts_now:
            try:
                self._start(name)
            except Exception:  # the endpoint could not take it: nothing is left behind
                with self._store.begin() as tx:
                    tx.delete(self._experiment(tx, name))
                raise
        return {"InferenceExperimentArn": arn}

    # ------------------------------------------------------------------------ start
    def start_inference_experiment(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            row = self._experiment(tx, req["Name"])
            if row.status != CREATED:
                raise ValidationException(
                    f"Inference experiment {row.name} is {row.status}: only a Created "
                    "experiment can be started."
                )
        self._start(req["Name"])
        return {"InferenceExperimentArn": self.arns.inference_experiment(req["Name"])}

    def _config_name(self, experiment: str, what: str) -> str:
        """A new endpoint configuration's name for the experiment (unique, ≤ 63 chars)."""
        return f"{experiment[:40].rstrip('-')}-{what}-{secrets.token_hex(4)}"

    def _deploy(self, endpoint: str, config_name: str, config: dict[str, Any]) -> None:
        """Create the endpoint configuration and update the endpoint to it (UpdateEndpoint's
        path: blue/green, and its errors, e.g. an endpoint that is not InService)."""
        self._hosting.create_endpoint_config({"EndpointConfigName": config_name, **config})
        try:
            self._hosting.update_endpoint(
                {"EndpointName": endpoint, "EndpointConfigName": config_name}
            )
        except Exception:
            self._hosting.delete_endpoint_config({"EndpointConfigName": config_name})
            raise

    def _start(self, name: str) -> None:
        with self._store.read() as tx:
            row = self._experiment(tx, name)
            req = row.request
        variants = _variants(req)
        mode = req["ShadowModeConfig"]
        source = mode["SourceModelVariantName"]
        shadow = _shadow(req)
        config: dict[str, Any] = {
            "ProductionVariants": [_production_variant(source, variants[source])],
            "ShadowProductionVariants": [
                _production_variant(
                    shadow["ShadowModelVariantName"],
                    variants[shadow["ShadowModelVariantName"]],
                    weight=shadow["SamplingPercentage"] / 100.0,
                )
            ],
        }
        storage = req.get("DataStorageConfig")
        if storage is not None:
            capture: dict[str, Any] = {
                "EnableCapture": True,
                "InitialSamplingPercentage": 100,
                "DestinationS3Uri": storage["Destination"],
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            }
            if storage.get("KmsKey"):
                capture["KmsKeyId"] = storage["KmsKey"]
            if storage.get("ContentType"):
                capture["CaptureContentTypeHeader"] = storage["ContentType"]
            config["DataCaptureConfig"] = capture
        config_name = self._config_name(name, "shadow")
        self._deploy(row.endpoint_name, config_name, config)
        with self._store.begin() as tx:
            row = self._experiment(tx, name)
            row.status = RUNNING
            row.schedule = {**row.schedule, "StartTime": self._clock().timestamp()}
            row.last_modified_at = self._clock()

    # ------------------------------------------------------------------------ stop
    def stop_inference_experiment(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req["Name"]
        with self._store.read() as tx:
            row = self._experiment(tx, name)
            exp = row.request
            status, endpoint = row.status, row.endpoint_name
        if status not in (CREATED, RUNNING):
            raise ValidationException(
                f"Inference experiment {name} is {status}: only a Created or Running "
                "experiment can be stopped."
            )
        variants = _variants(exp)
        source = exp["ShadowModeConfig"]["SourceModelVariantName"]
        shadow = _shadow(exp)["ShadowModelVariantName"]
        actions: dict[str, str] = req["ModelVariantActions"]
        unknown = sorted(set(actions) - set(variants))
        if unknown:
            raise ValidationException(
                f"ModelVariantActions names variant(s) {', '.join(unknown)} that the experiment "
                f"does not have ({source}, {shadow})."
            )
        missing = sorted(set(variants) - set(actions))
        if missing:
            raise ValidationException(
                f"ModelVariantActions must give an action for every variant: missing "
                f"{', '.join(missing)}."
            )
        desired = {v["VariantName"]: v for v in req.get("DesiredModelVariants", [])}
        if set(desired) - set(variants):
            raise ValidationException(
                "DesiredModelVariants names a variant the experiment does not have."
            )
        want = (actions[source], actions[shadow])
        if actions[source] == "Promote":
            raise ValidationException(
                f"{source} is the production variant already: its action is Retain or Remove."
            )
        allowed = {("Remove", "Promote"), ("Retain", "Remove"), ("Retain", "Retain")}
        if want not in allowed:
            raise ValidationException(
                f"ModelVariantActions {{{source}: {want[0]}, {shadow}: {want[1]}}} is not "
                "possible: Promote the shadow and Remove the production variant, Remove the "
                "shadow and Retain the production variant, or Retain both."
            )
        if status == RUNNING and want != ("Retain", "Retain"):
            if actions[shadow] == "Promote":
                promoted = desired.get(shadow) or desired.get(source) or variants[shadow]
                production = _production_variant(
                    source, promoted, model=variants[shadow]["ModelName"]
                )
            else:
                production = _production_variant(source, desired.get(source) or variants[source])
            config: dict[str, Any] = {"ProductionVariants": [production]}
            with self._hosting_store.read() as htx:
                row_now = htx.endpoint(endpoint)
                current = dict(row_now.deployed["config"]) if row_now is not None else {}
            if "DataCaptureConfig" in current:
                config["DataCaptureConfig"] = current["DataCaptureConfig"]
            self._deploy(endpoint, self._config_name(name, "stop"), config)
        now = self._clock()
        with self._store.begin() as tx:
            row = self._experiment(tx, name)
            row.status = req.get("DesiredState", COMPLETED)
            row.status_reason = req.get("Reason")
            row.completed_at = now
            row.last_modified_at = now
            row.schedule = {**row.schedule, "EndTime": now.timestamp()}
            row.request = {**row.request, "pier:ModelVariantActions": actions}
        return {"InferenceExperimentArn": self.arns.inference_experiment(name)}

    # ------------------------------------------------------------------------ read
    def _variant_status(self, row: InferenceExperimentRow, name: str, endpoint: Any) -> str:
        if row.status == CREATED:
            return "Creating"
        if row.status == RUNNING:
            serving = endpoint is not None and endpoint.status == EndpointStatus.IN_SERVICE
            return "InService" if serving else "Updating"
        action = row.request.get("pier:ModelVariantActions", {}).get(name, "Retain")
        return "Deleted" if action == "Remove" else "InService"

    def describe_inference_experiment(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            row = self._experiment(tx, req["Name"])
        with self._hosting_store.read() as htx:
            endpoint = htx.endpoint(row.endpoint_name)
        exp = row.request
        metadata: dict[str, Any] = {"EndpointName": row.endpoint_name}
        if endpoint is not None:
            metadata["EndpointConfigName"] = endpoint.config_name
            metadata["EndpointStatus"] = endpoint.status
            if endpoint.failure_reason:
                metadata["FailureReason"] = endpoint.failure_reason
        out: dict[str, Any] = {
            **self._summary(row),
            "Arn": row.arn,
            "EndpointMetadata": metadata,
            "ModelVariants": [
                {**v, "Status": self._variant_status(row, v["VariantName"], endpoint)}
                for v in exp["ModelVariants"]
            ],
            "ShadowModeConfig": exp["ShadowModeConfig"],
        }
        for key in ("DataStorageConfig", "KmsKey"):
            if key in exp:
                out[key] = exp[key]
        return out

    def _summary(self, row: InferenceExperimentRow) -> dict[str, Any]:
        exp = row.request
        out: dict[str, Any] = {
            "Name": row.name,
            "Type": exp["Type"],
            "Schedule": row.schedule,
            "Status": row.status,
            "CreationTime": row.created_at.timestamp(),
            "LastModifiedTime": row.last_modified_at.timestamp(),
            "RoleArn": exp["RoleArn"],
        }
        if row.completed_at is not None:
            out["CompletionTime"] = row.completed_at.timestamp()
        if row.status_reason:
            out["StatusReason"] = row.status_reason
        if exp.get("Description"):
            out["Description"] = exp["Description"]
        return out

    def list_inference_experiments(self, req: dict[str, Any]) -> dict[str, Any]:
        with self._store.read() as tx:
            rows = tx.experiments()
        if req.get("NameContains"):
            needle = req["NameContains"].lower()
            rows = [r for r in rows if needle in r.name.lower()]
        if req.get("Type"):
            rows = [r for r in rows if r.request["Type"] == req["Type"]]
        if req.get("StatusEquals"):
            rows = [r for r in rows if r.status == req["StatusEquals"]]
        for key, attr, before in (
            ("CreationTimeBefore", "created_at", True),
            ("CreationTimeAfter", "created_at", False),
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
        sort_by = req.get("SortBy", "CreationTime")
        keys: dict[str, Callable[[InferenceExperimentRow], list[Any]]] = {
            "Name": lambda r: [r.name],
            "CreationTime": lambda r: [r.created_at.timestamp(), r.name],
            "Status": lambda r: [r.status, r.name],
        }
        page = paging.sagemaker_page(rows, req, keys[sort_by], default_size=10)
        return {
            "InferenceExperiments": [self._summary(r) for r in page.items],
            **page.token_field(),
        }
