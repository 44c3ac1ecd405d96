"""What an endpoint runs and should run: its deployment, typed.

A `Deployment` is an endpoint configuration as it was when an endpoint was created or updated
with it (SageMaker keeps serving a config even after DeleteEndpointConfig / DeleteModel, so its
models are copied in), plus what is asked of each variant now: its weight and instance count.
The service builds one from the request; the store keeps it as JSON on the endpoint's row
(`deployed`, and `pending` while an update rolls out); the reconciler reads the typed fields.

The stored JSON is the shape rows have always had, so no migration is needed:
``{"config": {"ProductionVariants": [...], "ShadowProductionVariants": [...],
"DataCaptureConfig": {...}}, "models": {name: CreateModel request}, "desired": {variant:
{"DesiredWeight": w, "DesiredInstanceCount": n}}}``. The deployed row keeps "desired" in a
column of its own (`EndpointRow.desired`); `from_row` and `columns` do that split. Rows
written before this module hold the whole EndpointConfig request under "config": the keys read
here are a subset of it.

Fleets: the instances of a deployment carry its label, `config@generation`, where generation
is the endpoint's generation when the deployment was made. A restarted platform adopts exactly
the instances with the deployed label, and an update launches a fleet with a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from pier.store.tables import EndpointRow

#: SageMaker's default for ContainerStartupHealthCheckTimeoutInSeconds.
DEFAULT_STARTUP_TIMEOUT_S = 240.0


def containers(model_request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The container definitions of a CreateModel request (PrimaryContainer or Containers)."""
    if "PrimaryContainer" in model_request:
        return [model_request["PrimaryContainer"]]
    return list(model_request.get("Containers", []))


def fleet_label(config_name: str, generation: int) -> str:
    """The label the instances of a deployment carry (hosting's InstanceSpec.fleet)."""
    return f"{config_name}@{generation}"


@dataclass(frozen=True)
class VariantPlan:
    """One variant of a deployment: what its instances run, how many, and its traffic weight.

    `containers` are the model's ContainerDefinitions as CreateModel received them (image,
    model data, environment: hosting's model resolver reads that shape); an instance runs the
    first. `weight` and `instance_count` are what is asked now: the config's initial values,
    or what UpdateEndpointWeightsAndCapacities (or a retaining UpdateEndpoint) set since.
    """

    name: str
    model_name: str
    containers: tuple[dict[str, Any], ...]
    weight: float
    instance_count: int
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    instance_type: str = ""  # as asked; informational on pier's backends

    @property
    def container(self) -> dict[str, Any]:
        """What an instance of the variant runs."""
        return self.containers[0]

    @property
    def image(self) -> str | None:
        image: str | None = self.container.get("Image")
        return image

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.container.get("Environment", {}))

    def _config_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "VariantName": self.name,
            "ModelName": self.model_name,
            "InitialVariantWeight": self.weight,
            "InitialInstanceCount": self.instance_count,
            "ContainerStartupHealthCheckTimeoutInSeconds": self.startup_timeout_s,
        }
        if self.instance_type:
            out["InstanceType"] = self.instance_type
        return out


def _plan(
    variant: Mapping[str, Any],
    models: Mapping[str, Mapping[str, Any]],
    desired: Mapping[str, Any] | None,
) -> VariantPlan:
    """A variant of an EndpointConfig request; `desired` overrides its initial weight and count."""
    return VariantPlan(
        name=variant["VariantName"],
        model_name=variant["ModelName"],
        containers=tuple(containers(models.get(variant["ModelName"], {}))),
        weight=float(
            desired["DesiredWeight"] if desired else variant.get("InitialVariantWeight", 1.0)
        ),
        instance_count=int(
            desired["DesiredInstanceCount"] if desired else variant.get("InitialInstanceCount", 1)
        ),
        startup_timeout_s=float(
            variant.get("ContainerStartupHealthCheckTimeoutInSeconds", DEFAULT_STARTUP_TIMEOUT_S)
        ),
        instance_type=str(variant.get("InstanceType") or ""),
    )


@dataclass(frozen=True)
class Deployment:
    """An endpoint configuration deployed (or being deployed) on an endpoint.

    `shadow_variants` are the config's ShadowProductionVariants: kept with their models, not
    served yet (room for shadow deployments: a copy of the traffic, answers discarded).
    `data_capture` is the config's DataCaptureConfig as received (CaptureSettings parses it).

    How an update rolls out is not part of it: the endpoint row keeps the update's
    DeploymentConfig (LastDeploymentConfig), and pier.control.rollout plans it.
    """

    config_name: str
    generation: int
    variants: tuple[VariantPlan, ...]
    shadow_variants: tuple[VariantPlan, ...] = ()
    data_capture: dict[str, Any] | None = None

    @property
    def fleet(self) -> str:
        return fleet_label(self.config_name, self.generation)

    def variant(self, name: str) -> VariantPlan | None:
        """The production variant `name`, or None."""
        return next((v for v in self.variants if v.name == name), None)

    def with_variants(self, variants: tuple[VariantPlan, ...]) -> Deployment:
        return replace(self, variants=variants)

    @classmethod
    def from_requests(
        cls,
        config_name: str,
        generation: int,
        config: Mapping[str, Any],
        models: Mapping[str, Mapping[str, Any]],
    ) -> Deployment:
        """The deployment of an EndpointConfig request and its models' CreateModel requests,
        at the config's initial weights and counts."""
        return cls._parse(config_name, generation, {"config": config, "models": models})

    @classmethod
    def from_json(cls, config_name: str, generation: int, data: Mapping[str, Any]) -> Deployment:
        """The deployment stored as `to_json` wrote it."""
        return cls._parse(config_name, generation, data)

    @classmethod
    def _parse(cls, config_name: str, generation: int, data: Mapping[str, Any]) -> Deployment:
        config, models = data["config"], data["models"]
        desired = data.get("desired")
        return cls(
            config_name=config_name,
            generation=generation,
            variants=tuple(
                _plan(v, models, desired[v["VariantName"]] if desired is not None else None)
                for v in config["ProductionVariants"]
            ),
            shadow_variants=tuple(
                _plan(v, models, None) for v in config.get("ShadowProductionVariants", [])
            ),
            data_capture=config.get("DataCaptureConfig"),
        )

    def to_json(self) -> dict[str, Any]:
        config: dict[str, Any] = {"ProductionVariants": [v._config_json() for v in self.variants]}
        if self.shadow_variants:
            config["ShadowProductionVariants"] = [v._config_json() for v in self.shadow_variants]
        if self.data_capture is not None:
            config["DataCaptureConfig"] = self.data_capture
        models: dict[str, Any] = {
            v.model_name: {"Containers": list(v.containers)}
            for v in (*self.variants, *self.shadow_variants)
        }
        desired = {
            v.name: {"DesiredWeight": v.weight, "DesiredInstanceCount": v.instance_count}
            for v in self.variants
        }
        return {"config": config, "models": models, "desired": desired}


def deployed(row: EndpointRow) -> Deployment:
    """What the endpoint runs (or is being created with)."""
    generation = int(row.fleet.rpartition("@")[2])
    return Deployment.from_json(
        row.config_name, generation, {**row.deployed, "desired": row.desired}
    )


def pending(row: EndpointRow) -> Deployment | None:
    """The deployment an update is rolling out, or None. Its fleet's generation is the
    endpoint's: nothing else changes an endpoint while it updates."""
    if row.pending is None or row.pending_config_name is None:
        return None
    return Deployment.from_json(row.pending_config_name, row.generation, row.pending)


def deployed_columns(deployment: Deployment) -> dict[str, Any]:
    """The row's columns that hold what the endpoint runs."""
    data = deployment.to_json()
    desired = data.pop("desired")
    return {
        "config_name": deployment.config_name,
        "fleet": deployment.fleet,
        "deployed": data,
        "desired": desired,
    }


def pending_columns(deployment: Deployment | None) -> dict[str, Any]:
    """The row's columns that hold an update in progress (None: no update)."""
    if deployment is None:
        return {"pending_config_name": None, "pending": None}
    return {"pending_config_name": deployment.config_name, "pending": deployment.to_json()}


@dataclass
class VariantLive:
    """What runs for one variant right now (the reconciler's view)."""

    current_weight: float
    current_instance_count: int
    statuses: list[dict[str, Any]] = field(default_factory=list)
    model_uris: list[str] = field(default_factory=list)  # what the instances loaded


class LiveView(Protocol):
    def variants(self, endpoint: str) -> dict[str, VariantLive]:
        """What serves each variant of the endpoint's deployed fleet now."""
        ...

    def pending_variants(self, endpoint: str) -> dict[str, VariantLive]:
        """The new fleet of a guarded update while traffic shifts to it (else empty)."""
        ...
