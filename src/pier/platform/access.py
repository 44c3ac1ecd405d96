"""Who may call what: the roles, the one policy table, and the platform's cache of keys.

Every operation of every signed API is in `POLICY`, as one of three action classes:

    read     Describe*, List*, Get*: look, change nothing
    invoke   InvokeEndpoint
    write    everything that changes state (create, update, delete, put, set, start, stop)

and a role is the classes it may use (`ROLE_ACTIONS`): admin everything, deployer read, invoke
and write, invoker read and invoke. An operation missing from the table is admin's alone, so a
new operation is closed until it is classified (tests/platform/test_access.py checks that each
API's table is). pier.platform.api.serve asks `Principal.may(operation)` after SigV4: one set
lookup on the request path. Denials are AccessDeniedException in each API's dialect.

`KeyCache` is what SigV4 looks keys up in: a dict {access key id: Principal}, built from the
state store (pier.store.users) and reloaded off the event loop when the store's keys change
(polled every `refresh_s`: one small query, no secret read unless something changed). Keys
whose rotation grace period is over drop out at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pier.contract.sigv4 import Credentials
from pier.errors import AccessDeniedException
from pier.store.users import UserStore

log = logging.getLogger("pier.platform")

READ, INVOKE, WRITE = "read", "invoke", "write"

#: operation -> action class, for every operation of every signed API on the platform's port.
POLICY: dict[str, str] = {
    # SageMaker's control API (pier.platform.sagemaker_api)
    "CreateModel": WRITE,
    "DescribeModel": READ,
    "ListModels": READ,
    "DeleteModel": WRITE,
    "CreateEndpointConfig": WRITE,
    "DescribeEndpointConfig": READ,
    "ListEndpointConfigs": READ,
    "DeleteEndpointConfig": WRITE,
    "CreateEndpoint": WRITE,
    "DescribeEndpoint": READ,
    "ListEndpoints": READ,
    # shadow tests (pier.control.experiment_service)
    "CreateInferenceExperiment": WRITE,
    "DescribeInferenceExperiment": READ,
    "ListInferenceExperiments": READ,
    "StartInferenceExperiment": WRITE,
    "StopInferenceExperiment": WRITE,
    "UpdateEndpoint": WRITE,
    "UpdateEndpointWeightsAndCapacities": WRITE,
    "DeleteEndpoint": WRITE,
    "AddTags": WRITE,
    "ListTags": READ,
    "DeleteTags": WRITE,
    "CreateMonitoringSchedule": WRITE,
    "DescribeMonitoringSchedule": READ,
    "ListMonitoringSchedules": READ,
    "DeleteMonitoringSchedule": WRITE,
    "StopMonitoringSchedule": WRITE,
    "StartMonitoringSchedule": WRITE,
    "ListMonitoringExecutions": READ,
    # SageMaker's runtime API (pier.platform.runtime_api)
    "InvokeEndpoint": INVOKE,
    # CloudWatch, both protocols (pier.platform.cloudwatch_api)
    "GetMetricData": READ,
    "GetMetricStatistics": READ,
    "ListMetrics": READ,
    "PutMetricData": WRITE,
    "PutMetricAlarm": WRITE,
    "DescribeAlarms": READ,
    "DescribeAlarmsForMetric": READ,
    "DescribeAlarmHistory": READ,
    "DeleteAlarms": WRITE,
    "SetAlarmState": WRITE,
    "EnableAlarmActions": WRITE,
    "DisableAlarmActions": WRITE,
    # pier's own routes (pier.platform.ground_truth_api, pier.platform.monitoring_api)
    "PutGroundTruth": WRITE,
    "StartMonitoringExecution": WRITE,
    "GetMonitoringReport": READ,
    # pier.platform.deployments_api, pier.platform.console (a one-time link signs its caller in)
    "ListEndpointDeployments": READ,
    "CreateConsoleLink": READ,
    # pier.platform.gateway_api: `pier keys` and `pier gateway` tell the platform to reload
    "SyncGateway": WRITE,
}

#: The user the home's own credential belongs to (pier.platform.home, `pier env`).
HOME_USER = "admin"

#: role -> the action classes it may use (admin: also what POLICY does not classify).
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({READ, INVOKE, WRITE}),
    "deployer": frozenset({READ, INVOKE, WRITE}),
    "invoker": frozenset({READ, INVOKE}),
}

#: Operations the audit trail records whenever they are called (denied calls are recorded
#: whatever their class).
STATE_CHANGING = frozenset(op for op, action in POLICY.items() if action == WRITE)


def allowed_operations(role: str) -> frozenset[str]:
    """The operations of POLICY `role` may call."""
    actions = ROLE_ACTIONS[role]
    return frozenset(op for op, action in POLICY.items() if action in actions)


_ALLOWED = {role: allowed_operations(role) for role in ROLE_ACTIONS}


@dataclass(frozen=True)
class Principal(Credentials):
    """A verified caller: its key (SigV4 checks the secret), its user and role."""

    user: str = ""
    role: str = "invoker"
    arn: str = ""  # arn:aws:iam::<account>:user/<user>, as IAM names the caller in denials
    admin: bool = False
    allowed: frozenset[str] = field(default=frozenset(), repr=False)

    def may(self, operation: str) -> bool:
        """Whether the role grants `operation` (admin: every operation)."""
        return self.admin or operation in self.allowed


def principal(key_id: str, secret: str, user: str, role: str, account: str) -> Principal:
    """The Principal of a key of `user` with `role` (one of ROLE_ACTIONS) in `account`."""
    arn = f"arn:aws:iam::{account}:user/{user}"
    return Principal(key_id, secret, user, role, arn, role == "admin", _ALLOWED[role])


def denied(caller: Principal, service: str, operation: str) -> AccessDeniedException:
    """IAM's wording of a denial (no resource: the role, not the resource, decides)."""
    prefix = "cloudwatch" if service == "monitoring" else "sagemaker"
    return AccessDeniedException(
        f"User: {caller.arn} is not authorized to perform: {prefix}:{operation} "
        f"(role {caller.role}; see docs/security.md)"
    )


def adopt_home_credential(users: UserStore, credentials: Credentials) -> None:
    """Make the home's access key (credentials.json, which `pier env` and the CLI sign with) a
    key of the user `admin`, created with role admin if need be: a home from before users
    keeps working unchanged. If the key is already some user's, it is only stored again when
    this home's server key cannot read it (server.key was lost)."""
    if users.owner_of(credentials.access_key_id) is not None:
        users.rekey(credentials.access_key_id, credentials.secret_access_key)
        return
    if any(u.name == HOME_USER for u in users.users()):
        users.add_key(HOME_USER, credentials.access_key_id, credentials.secret_access_key)
    else:
        users.add(HOME_USER, "admin", (credentials.access_key_id, credentials.secret_access_key))


class KeyCache:
    """{access key id: Principal} for SigV4, kept in step with the store's users."""

    def __init__(self, users: UserStore, account: str, refresh_s: float = 1.0) -> None:
        self._users = users
        self._account = account
        self._refresh_s = refresh_s
        self._keys: dict[str, Principal] = {}
        self._fingerprint: tuple[tuple[str, str, str], ...] | None = None
        self._task: asyncio.Task[None] | None = None

    def lookup(self, key_id: str) -> Principal | None:
        """The caller holding `key_id`, else None (one dict lookup)."""
        return self._keys.get(key_id)

    def reload(self) -> bool:
        """Rebuild the cache if the store's valid keys changed (blocking); whether it did."""
        now = datetime.now(UTC)
        fingerprint = self._users.fingerprint(now)
        if fingerprint == self._fingerprint:
            return False
        self._keys = {
            k.access_key_id: principal(
                k.access_key_id, k.secret_access_key, k.user, k.role, self._account
            )
            for k in self._users.active_keys(now)
        }
        self._fingerprint = fingerprint
        log.info("access keys loaded: %d key(s) of %d user(s)", len(self._keys),
                 len({p.user for p in self._keys.values()}))  # fmt: skip
        return True

    async def start(self) -> None:
        """Load now, then poll in the background."""
        await asyncio.to_thread(self.reload)
        self._task = asyncio.create_task(self._poll())

    async def aclose(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await asyncio.to_thread(self.reload)
            except Exception as exc:  # the store is away: keep the keys we have, say why
                log.warning("access keys not reloaded: %s", type(exc).__name__)


__all__ = [
    "HOME_USER",
    "INVOKE",
    "POLICY",
    "READ",
    "ROLE_ACTIONS",
    "STATE_CHANGING",
    "WRITE",
    "KeyCache",
    "Principal",
    "adopt_home_credential",
    "allowed_operations",
    "denied",
    "principal",
]
