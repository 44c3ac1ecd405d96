"""Deployment settings in pier's words (`pier rollout`'s options, a spec's `deployment:`) and
the SageMaker `DeploymentConfig` they stand for.

```yaml
deployment:
  canary: 10%          # or `linear: 20%` (a step), or neither: all at once; `2` = instances
  bake: 5m             # WaitIntervalInSeconds: how long each step is watched
  alarms: [shop-5xx]   # AutoRollbackConfiguration.Alarms: one in ALARM rolls back
  termination_wait: 0s # TerminationWaitInSeconds: the old fleet kept after the switch
  timeout: 1h          # MaximumExecutionTimeoutInSeconds
```

becomes a BlueGreenUpdatePolicy with a TrafficRoutingConfiguration of Type CANARY, LINEAR or
ALL_AT_ONCE, within SageMaker's bounds (botocore's model: waits 0 to 3600 s, timeout 600 to
28800 s, 1 to 10 alarms). Validation is pydantic's; callers turn its errors into their own
(file:line for a spec, the option for the CLI).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_DURATION = re.compile(r"(\d+)([smh])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}
_STEP = re.compile(r"(\d+)(%?)")
_ALARM = re.compile(r"[^\x00-\x1f\x7f]{1,255}")  # CloudWatch's AlarmName: 1-255, no controls


def parse_duration(value: Any) -> int:
    """`30s`, `5m`, `1h`, `1h30m` or a number of seconds → seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration such as 30s, 5m or 1h")
    text = value.strip().lower()
    parts = _DURATION.findall(text)
    if text.isdigit():
        return int(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration such as 30s, 5m or 1h")
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def parse_step(value: Any) -> dict[str, Any]:
    """`10%` → CAPACITY_PERCENT 10, `2` → INSTANCE_COUNT 2 (SageMaker's CapacitySize)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    match = _STEP.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ValueError(
            f"{value!r} is not a step: a share of the fleet such as 10% or a number of instances"
        )
    size = int(match.group(1))
    if match.group(2):
        if size > 100:
            raise ValueError(f"{value!r}: a share of the fleet is at most 100%")
        return {"Type": "CAPACITY_PERCENT", "Value": size}
    return {"Type": "INSTANCE_COUNT", "Value": size}


Seconds = Annotated[int, BeforeValidator(parse_duration)]
Step = Annotated[dict[str, Any], BeforeValidator(parse_step)]


def _alarm(value: Any) -> Any:
    if not isinstance(value, str) or not _ALARM.fullmatch(value):
        raise ValueError(f"{value!r} is not an alarm name (1 to 255 characters)")
    return value


class DeploymentSettings(BaseModel):
    """How an update of the endpoint rolls out (the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    canary: Step | None = None
    linear: Step | None = None
    bake: Annotated[Seconds, Field(ge=0, le=3600)] = 300
    alarms: Annotated[list[Annotated[str, BeforeValidator(_alarm)]], Field(max_length=10)] = Field(
        default_factory=list
    )
    termination_wait: Annotated[Seconds, Field(ge=0, le=3600)] = 0
    timeout: Annotated[Seconds, Field(ge=600, le=28800)] | None = None

    @model_validator(mode="after")
    def _one_strategy(self) -> DeploymentSettings:
        if self.canary is not None and self.linear is not None:
            raise ValueError("give canary or linear, not both")
        return self

    @property
    def strategy(self) -> str:
        """CANARY, LINEAR or ALL_AT_ONCE."""
        if self.canary is not None:
            return "CANARY"
        return "LINEAR" if self.linear is not None else "ALL_AT_ONCE"

    def deployment_config(self) -> dict[str, Any]:
        """SageMaker's DeploymentConfig for these settings."""
        routing: dict[str, Any] = {"Type": self.strategy, "WaitIntervalInSeconds": self.bake}
        if self.canary is not None:
            routing["CanarySize"] = dict(self.canary)
        if self.linear is not None:
            routing["LinearStepSize"] = dict(self.linear)
        policy: dict[str, Any] = {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": self.termination_wait,
        }
        if self.timeout is not None:
            policy["MaximumExecutionTimeoutInSeconds"] = self.timeout
        config: dict[str, Any] = {"BlueGreenUpdatePolicy": policy}
        if self.alarms:
            config["AutoRollbackConfiguration"] = {
                "Alarms": [{"AlarmName": name} for name in self.alarms]
            }
        return config


__all__ = ["DeploymentSettings", "parse_duration", "parse_step"]
