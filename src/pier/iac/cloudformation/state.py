"""What runs: the stack's resources as the platform reports them, through its SageMaker API.

A stack has no record of its own. Like CloudFormation, which tags what it creates with
`aws:cloudformation:*`, pier tags each resource with `pier:stack`, `pier:logical-id` and
`pier:hash` (a digest of the resolved request), and finds a stack again by listing the
platform's models, endpoint configurations and endpoints and reading their tags. Only boto3
calls are made, as users' own code would make them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pier.errors import PierError
from pier.iac.cloudformation.resources import ENDPOINT, ENDPOINT_CONFIG, MODEL, Kind
from pier.iac.cloudformation.stack import DIGEST_TAG, LOGICAL_ID_TAG, STACK_TAG

#: Endpoint statuses in which the endpoint is busy and cannot be updated.
BUSY = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
_LISTS = (
    (MODEL, "list_models", "Models", "ModelName", "ModelArn"),
    (
        ENDPOINT_CONFIG,
        "list_endpoint_configs",
        "EndpointConfigs",
        "EndpointConfigName",
        "EndpointConfigArn",
    ),
    (ENDPOINT, "list_endpoints", "Endpoints", "EndpointName", "EndpointArn"),
)


class ApplyError(PierError):
    """A call to the platform failed (after the plan was accepted)."""

    status = 500
    code = "ApplyFailed"


@dataclass
class Existing:
    """A resource on the platform."""

    kind: Kind
    name: str
    arn: str
    tags: dict[str, str] = field(default_factory=dict)
    status: str | None = None  # endpoints only
    config_name: str | None = None  # endpoints of the stack only
    failure_reason: str | None = None

    @property
    def stack(self) -> str | None:
        return self.tags.get(STACK_TAG)

    @property
    def logical_id(self) -> str:
        return self.tags.get(LOGICAL_ID_TAG, "")

    @property
    def digest(self) -> str:
        return self.tags.get(DIGEST_TAG, "")

    @property
    def user_tags(self) -> dict[str, str]:
        return {k: v for k, v in self.tags.items() if not k.startswith("pier:")}


@dataclass
class Platform:
    """Everything the platform holds, by kind and lower-cased name (names are unique that
    way: ARNs lower-case them), and this stack's part of it."""

    stack_name: str
    everything: dict[str, dict[str, Existing]]
    stack: list[Existing]

    def named(self, kind: Kind, name: str) -> Existing | None:
        return self.everything[kind.short].get(name.lower())


def error_text(exc: BaseException) -> str:
    """One line for a boto3 / botocore error."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        return f"{error.get('Code', '?')}: {error.get('Message', '')}"
    return str(exc) or type(exc).__name__


def _pages(client: Any, method: str, key: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"MaxResults": 100}
    while True:
        page = getattr(client, method)(**kwargs)
        yield from page[key]
        token = page.get("NextToken")
        if not token:
            return
        kwargs["NextToken"] = token


def tags_of(client: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn, "MaxResults": 100}
    while True:
        page = client.list_tags(**kwargs)
        tags.update({t["Key"]: t.get("Value", "") for t in page["Tags"]})
        if not page.get("NextToken"):
            return tags
        kwargs["NextToken"] = page["NextToken"]


def read_platform(client: Any, stack_name: str) -> Platform:
    """List everything, read tags, describe this stack's endpoints."""
    everything: dict[str, dict[str, Existing]] = {}
    mine: list[Existing] = []
    for kind, method, key, name_key, arn_key in _LISTS:
        found: dict[str, Existing] = {}
        for item in _pages(client, method, key):
            existing = Existing(kind, item[name_key], item[arn_key])
            existing.status = item.get("EndpointStatus")
            if existing.status != "Deleting":  # a deleting endpoint has lost its tags already
                existing.tags = tags_of(client, existing.arn)
            found[existing.name.lower()] = existing
            if existing.stack == stack_name:
                mine.append(existing)
        everything[kind.short] = found
    for existing in mine:
        if existing.kind is ENDPOINT:
            described = client.describe_endpoint(EndpointName=existing.name)
            existing.status = described["EndpointStatus"]
            existing.config_name = described.get("EndpointConfigName")
            existing.failure_reason = described.get("FailureReason")
    return Platform(stack_name, everything, mine)


def describe(client: Any, existing: Existing) -> dict[str, Any]:
    """The request the platform keeps for a model or endpoint configuration."""
    if existing.kind is MODEL:
        out: dict[str, Any] = client.describe_model(ModelName=existing.name)
    else:
        out = client.describe_endpoint_config(EndpointConfigName=existing.name)
    return out


Progress = Callable[[str, str, float], None]  # (what, status, seconds waited)


def wait_in_service(
    client: Any,
    name: str,
    config_name: str,
    progress: Progress,
    timeout: float,
    poll: float = 0.5,
) -> None:
    """Until the endpoint is InService on `config_name`; ApplyError if it fails (a failed
    update returns to InService on the old configuration with a FailureReason)."""
    started = time.monotonic()
    while True:
        described = client.describe_endpoint(EndpointName=name)
        status = described["EndpointStatus"]
        elapsed = time.monotonic() - started
        progress(f"endpoint {name}", status, elapsed)
        if status == "InService":
            if described.get("EndpointConfigName") == config_name:
                return
            raise ApplyError(
                f"endpoint {name} did not move to {config_name}: "
                f"{described.get('FailureReason') or 'the update failed'}"
            )
        if status == "Failed":
            raise ApplyError(
                f"endpoint {name} failed: {described.get('FailureReason') or 'no reason given'}"
            )
        if elapsed > timeout:
            raise ApplyError(f"endpoint {name} is still {status} after {timeout:.0f} s")
        time.sleep(poll)


def wait_gone(
    client: Any, name: str, progress: Progress, timeout: float, poll: float = 0.5
) -> None:
    """Until DescribeEndpoint says the endpoint does not exist."""
    from botocore.exceptions import ClientError

    started = time.monotonic()
    while True:
        try:
            status = client.describe_endpoint(EndpointName=name)["EndpointStatus"]
        except ClientError as exc:
            if "Could not find" in error_text(exc):
                return
            raise
        elapsed = time.monotonic() - started
        progress(f"endpoint {name}", status, elapsed)
        if elapsed > timeout:
            raise ApplyError(f"endpoint {name} is still {status} after {timeout:.0f} s")
        time.sleep(poll)
