"""MLflow's deployments plugin for pier: `mlflow deployments create -t pier ...` and
`mlflow.deployments.get_deploy_client("pier")`, registered through the `mlflow.deployments`
entry point (pyproject.toml).

The calls MLflow documents for its SageMaker target, with the same config keys and modes,
mapped onto pier's SageMaker API with boto3 (pier.iac.model_deploy does the deploying): a
deployment is an endpoint; create makes it (mode create), update replaces its model or adds one
beside it with weight 0 (mode replace / add), delete removes it with its config and models
(unless archive=True), predict invokes it through the runtime API. The target URI is `pier` for
this machine's platform or `pier:/URL` for another (pier.mlflow_plugin.target). See
docs/mlflow-deployments.md.

MLflow requires the module to hold exactly one BaseDeploymentClient subclass, `run_local` and
`target_help`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from mlflow.deployments import BaseDeploymentClient, PredictionsResponse
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from pier.errors import PierError
from pier.iac import model_deploy
from pier.iac.model_deploy import Mode
from pier.mlflow_plugin.config import DELETE_KEYS, ConfigError, deploy_request, read
from pier.mlflow_plugin.target import Target, TargetError, resolve

FLAVOR = "python_function"  # what pier serves (MLflow's pyfunc)

_HELP = """\
pier: deploy MLflow models to pier's SageMaker-compatible endpoints.
See docs/mlflow-deployments.md in pier's repository.

Target URI:
- pier              the platform `pier up` runs from this machine's home ($PIER_HOME or
                    ~/.pier), with the home's access key and MLflow
- pier:/URL         another pier, e.g. pier:/http://10.0.0.5:7437, with boto3's credentials
                    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, as `pier env` prints them)

A deployment is an endpoint. `create` makes it and waits for InService; `update` replaces its
model blue/green (-C mode=replace, the default) or adds the model as a new variant with weight 0
(-C mode=add; shift traffic with `pier weights ENDPOINT VARIANT=WEIGHT ...`); `delete` removes
it with its endpoint config and models (-C archive=True keeps those). `predict` invokes it.

Config (-C key=value), the keys of MLflow's SageMaker target that apply:
  instance_type       e.g. ml.m5.large (default)
  instance_count      instances of the variant (default 1)
  variant_name        the production variant's name (default NAME-vVERSION for models:/NAME/VERSION)
  mode                create (create); replace or add (update)
  image_url           serve from this container image instead of pier's MLflow server
  env                 JSON object: the container's environment, e.g. '{"PIER_WORKERS": "2"}'
  tags                JSON object: tags of the SageMaker Model
  data_capture_config JSON object: SageMaker's DataCaptureConfig
  execution_role_arn, vpc_config   passed to CreateModel as SageMaker takes them
  synchronous         True (default): wait for InService (or for the deletion)
  timeout_seconds     how long to wait (default 1200; delete 300)
  archive             True: keep the replaced or deleted endpoint's config and models
  region_name         the region to sign requests for (default the platform's)
bucket, assume_role_arn, async_inference_config and serverless_config do not apply to pier.

A models:/NAME@ALIAS URI is pinned to the version the alias names at deployment time.
"""


def target_help() -> str:
    return _HELP


def run_local(name: str, model_uri: str, flavor: str | None = None, config: Any = None) -> None:
    raise MlflowException(
        f"run-local: serve {model_uri} on this machine with `pier serve -m {model_uri}` (the "
        "SageMaker container contract on port 8080), or deploy it to the local platform with "
        f"`mlflow deployments create -t pier --name {name} -m {model_uri}`",
        error_code=INVALID_PARAMETER_VALUE,
    )


@contextlib.contextmanager
def _mlflow_errors(action: str) -> Iterator[None]:
    """pier's and the platform's errors as MlflowException: one message, no traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ConfigError, TargetError) as exc:
        raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
    except PierError as exc:
        raise MlflowException(f"{action}: {exc.message}", INVALID_PARAMETER_VALUE) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = RESOURCE_DOES_NOT_EXIST if model_deploy.not_found(exc) else INVALID_PARAMETER_VALUE
        message = f"{action}: {error.get('Code', 'Error')}: {error.get('Message', exc)}"
        raise MlflowException(message, error_code=code) from None
    except BotoCoreError as exc:
        raise MlflowException(f"{action}: {exc}") from None


def _plain(value: Any) -> Any:
    """boto3's answer as JSON values (datetimes as ISO 8601), without ResponseMetadata."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _check_flavor(flavor: str | None) -> None:
    if flavor not in (None, FLAVOR):
        raise MlflowException(
            f"flavor {flavor!r}: pier serves the {FLAVOR} flavor", INVALID_PARAMETER_VALUE
        )


class PierDeploymentClient(BaseDeploymentClient):  # type: ignore[misc]  # MLflow is untyped
    """Deployments on pier (the module docstring); `target_uri` is `pier` or `pier:/URL`."""

    def __init__(self, target_uri: str) -> None:
        super().__init__(target_uri=target_uri)
        with _mlflow_errors(f"target {target_uri}"):
            resolve(target_uri)  # fail early on a malformed URI or a stopped local platform

    def _target(self, config: dict[str, Any] | None = None) -> Target:
        region = (config or {}).get("region_name")
        return resolve(self.target_uri, str(region) if region else None)

    def _deploy(
        self, name: str, model_uri: str, config: Any, modes: tuple[Mode, ...], action: str
    ) -> dict[str, Any]:
        with _mlflow_errors(f"{action} deployment {name}"):
            request = deploy_request(name, model_uri, config, modes)
            target = self._target(config)
            result = model_deploy.deploy(target.client("sagemaker"), request, target.tracking_uri)
        return {
            "name": result.endpoint,
            "flavor": FLAVOR,
            "model_uri": result.model_uri,
            "variant": result.variant,
            "endpoint_config": result.config,
        }

    def create_deployment(
        self,
        name: str,
        model_uri: str,
        flavor: str | None = None,
        config: dict[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        """Create endpoint `name` serving `model_uri` and wait for InService (mode create: an
        existing endpoint is an error)."""
        _check_flavor(flavor)
        _same_endpoint(name, endpoint)
        return self._deploy(name, model_uri, config, (Mode.CREATE,), "create")

    def update_deployment(
        self,
        name: str,
        model_uri: str | None = None,
        flavor: str | None = None,
        config: dict[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        """Put `model_uri` on endpoint `name`, blue/green: mode replace (default) or add (a new
        variant with weight 0). Creates the endpoint if it does not exist, as SageMaker's
        target does."""
        _check_flavor(flavor)
        _same_endpoint(name, endpoint)
        if model_uri is None:
            raise MlflowException(
                "A model_uri must be provided when updating a pier deployment",
                INVALID_PARAMETER_VALUE,
            )
        return self._deploy(name, model_uri, config, (Mode.REPLACE, Mode.ADD), "update")

    def delete_deployment(
        self, name: str, config: dict[str, Any] | None = None, endpoint: str | None = None
    ) -> None:
        """Delete endpoint `name`, then its config and models unless archive=True or something
        else uses them. Deleting an endpoint that does not exist does nothing."""
        _same_endpoint(name, endpoint)
        with _mlflow_errors(f"delete deployment {name}"):
            values = read(config, DELETE_KEYS)
            sm = self._target(config).client("sagemaker")
            model_deploy.delete(
                sm,
                name,
                archive=values.get("archive", False),
                synchronous=values.get("synchronous", True),
                timeout_seconds=float(values.get("timeout_seconds", 300)),
            )

    def list_deployments(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """ListEndpoints' summaries, each with a `name` key (the endpoint's)."""
        with _mlflow_errors("list deployments"):
            sm = self._target().client("sagemaker")
            items = []
            for page in sm.get_paginator("list_endpoints").paginate():
                items += [{"name": e["EndpointName"], **_plain(e)} for e in page["Endpoints"]]
        return [e for e in items if endpoint is None or e["name"] == endpoint]

    def get_deployment(self, name: str, endpoint: str | None = None) -> dict[str, Any]:
        """DescribeEndpoint, with a `name` key; MlflowException if there is no such endpoint."""
        _same_endpoint(name, endpoint)
        with _mlflow_errors(f"get deployment {name}"):
            described = model_deploy.describe(self._target().client("sagemaker"), name)
        if described is None:
            raise MlflowException(f"there is no deployment {name}", RESOURCE_DOES_NOT_EXIST)
        return {"name": name, **_plain(described)}

    def predict(
        self,
        deployment_name: str | None = None,
        inputs: Any = None,
        endpoint: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> PredictionsResponse:
        """InvokeEndpoint with the inputs as MLflow's JSON (a DataFrame as dataframe_split,
        other inputs under `instances`), as SageMaker's target sends them."""
        from mlflow.utils.proto_json_utils import dump_input_data

        name = deployment_name or endpoint
        if name is None:
            raise MlflowException("predict: name the deployment", INVALID_PARAMETER_VALUE)
        _same_endpoint(name, endpoint)
        body = dump_input_data(inputs, inputs_key="instances", params=params)
        with _mlflow_errors(f"predict with deployment {name}"):
            runtime = self._target().client("sagemaker-runtime")
            answer = runtime.invoke_endpoint(
                EndpointName=name, Body=body, ContentType="application/json"
            )
            text = answer["Body"].read().decode("utf-8")
        try:
            return PredictionsResponse.from_json(text)
        except MlflowException:
            raise MlflowException(
                f"predict with deployment {name}: the answer has no predictions: {text[:200]}"
            ) from None

    def explain(
        self, deployment_name: str | None = None, df: Any = None, endpoint: Any = None
    ) -> Any:
        raise MlflowException(
            "explain: pier endpoints have no explainer (SageMaker's Clarify online "
            "explainability is not part of pier); predict works",
            INVALID_PARAMETER_VALUE,
        )


def _same_endpoint(name: str | None, endpoint: str | None) -> None:
    """On pier a deployment is an endpoint: `endpoint`, if given, must name the same one."""
    if endpoint is not None and name is not None and endpoint != name:
        raise MlflowException(
            f"deployment {name} is endpoint {name}; --endpoint {endpoint} names another "
            "(on pier a deployment is an endpoint: give one of them)",
            INVALID_PARAMETER_VALUE,
        )


__all__ = ["FLAVOR", "PierDeploymentClient", "run_local", "target_help"]
