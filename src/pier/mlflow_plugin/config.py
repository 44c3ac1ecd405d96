"""The `config` of MLflow's deployment calls (`-C key=value` on its CLI) for the pier target:
the keys of MLflow's SageMaker target that apply to pier, read the way that target reads them
(numbers from strings, `True`/`False`, JSON objects), into pier.iac.model_deploy's Request.

Unlike the SageMaker target, which skips keys it does not know, a key pier does not know or
does not use is refused with its name: a typo must not deploy something else than asked.
"""

from __future__ import annotations

import json
from typing import Any

from pier.iac.model_deploy import DEFAULT_INSTANCE_TYPE, Mode, Request

_INT = {"instance_count", "timeout_seconds"}
_BOOL = {"synchronous", "archive"}
_DICT = {"vpc_config", "data_capture_config", "tags", "env"}
_STR = {"instance_type", "variant_name", "image_url", "execution_role_arn", "region_name", "mode"}
DEPLOY_KEYS = _INT | _BOOL | _DICT | _STR
DELETE_KEYS = {"archive", "synchronous", "timeout_seconds", "region_name"}
# MLflow's SageMaker keys with no meaning on pier, and why.
NOT_APPLICABLE = {
    "bucket": "pier reads the model from its URI (the MLflow registry, runs:/, a path): "
    "nothing is uploaded to a bucket",
    "assume_role_arn": "pier authenticates with its own access keys (pier env)",
    "async_inference_config": "pier endpoints are real-time",
    "serverless_config": "give instance_type and instance_count",
}


class ConfigError(Exception):
    """A config key or value that cannot be used (raised as MlflowException by the client)."""


def _value(key: str, value: Any) -> Any:
    if key in _INT and not isinstance(value, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config {key}={value!r}: expected a whole number") from None
    if key in _BOOL and not isinstance(value, bool):
        if str(value).lower() not in ("true", "false"):
            raise ConfigError(f"config {key}={value!r}: expected True or False")
        return str(value).lower() == "true"
    if key in _DICT and not isinstance(value, dict):
        try:
            value = json.loads(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"config {key}: not a JSON object ({exc})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"config {key}: expected a JSON object, got {value!r}")
    return value


def read(config: dict[str, Any] | None, allowed: set[str]) -> dict[str, Any]:
    """The config's keys, typed; ConfigError naming a key that is unknown or does not apply."""
    values: dict[str, Any] = {}
    for key, value in (config or {}).items():
        if key in NOT_APPLICABLE:
            raise ConfigError(f"config {key} does not apply to pier: {NOT_APPLICABLE[key]}")
        if key not in allowed:
            raise ConfigError(
                f"unknown config key {key!r}; the pier target takes {', '.join(sorted(allowed))}"
            )
        values[key] = _value(key, value)
    if values.get("instance_count", 1) < 1:
        raise ConfigError(f"config instance_count={values['instance_count']}: at least 1")
    if values.get("timeout_seconds", 1) < 1:
        raise ConfigError(f"config timeout_seconds={values['timeout_seconds']}: at least 1")
    return values


def deploy_request(
    name: str, model_uri: str, config: dict[str, Any] | None, modes: tuple[Mode, ...]
) -> Request:
    """The Request for create_deployment (modes: create) or update_deployment (replace, add)."""
    values = read(config, DEPLOY_KEYS)
    values.pop("region_name", None)  # chooses the client (pier.mlflow_plugin.target)
    mode = values.pop("mode", modes[0].value)
    if mode not in [m.value for m in modes]:
        raise ConfigError(
            f"config mode={mode!r}: this call takes {' or '.join(m.value for m in modes)}"
        )
    return Request(
        endpoint=name,
        model_uri=model_uri,
        mode=Mode(mode),
        instance_type=values.pop("instance_type", DEFAULT_INSTANCE_TYPE),
        timeout_seconds=float(values.pop("timeout_seconds", 1200)),
        **values,
    )
