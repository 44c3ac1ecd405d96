"""The policy table (pier.platform.access): every operation every API serves is classified,
roles grant what docs/security.md says, and the CLI's copy of the roles matches the store's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cbor2
import orjson

from pier.cli import users_command
from pier.contract.cloudwatch import operation_names
from pier.control.alarm_service import CloudWatchAlarmService
from pier.control.arns import ArnFactory
from pier.control.experiment_service import ExperimentService
from pier.control.metrics_service import CloudWatchMetricsService
from pier.control.monitoring_service import MonitoringService
from pier.control.service import HostingService
from pier.monitor.alarms.runner import AlarmRunner
from pier.platform.access import POLICY, ROLE_ACTIONS, principal
from pier.platform.api import Request
from pier.platform.audit_trail import AuditTrail, resource_arn
from pier.platform.cloudwatch_api import alarm_operations, metric_operations
from pier.platform.sagemaker_api import SageMakerApi
from pier.store import db
from pier.store.alarms import AlarmStore
from pier.store.audit import AuditStore
from pier.store.metrics import MetricStore
from pier.store.users import ROLES
from tests.platform.test_api import ACCOUNT, NoLive

ARNS = ArnFactory("us-east-1", ACCOUNT)


def test_every_operation_the_apis_serve_is_in_the_policy_table(tmp_path: Path) -> None:
    engine = db.create(f"sqlite:///{tmp_path}/pier.db")
    db.migrate(engine)
    sessions = db.sessions(engine)
    hosting = HostingService(
        sessions, ARNS, check_image=lambda image: None, live=NoLive(), notify=lambda: None
    )
    monitoring = MonitoringService(sessions, ARNS, run_now=lambda name: 0)
    metrics = MetricStore(sessions)
    alarm_store = AlarmStore(sessions)
    runner = AlarmRunner(alarm_store, metrics, account=ACCOUNT, region="us-east-1")
    alarms = CloudWatchAlarmService(alarm_store, runner, region="us-east-1", account=ACCOUNT)
    cloudwatch = set(metric_operations(CloudWatchMetricsService(metrics)))
    cloudwatch |= set(alarm_operations(alarms))
    assert cloudwatch <= set(operation_names())
    experiments = ExperimentService(sessions, ARNS, hosting=hosting)
    served = set(SageMakerApi(hosting, monitoring, experiments).operations.names()) | cloudwatch
    served |= {
        "InvokeEndpoint",
        "PutGroundTruth",
        "StartMonitoringExecution",
        "GetMonitoringReport",
        "ListEndpointDeployments",  # pier.platform.deployments_api
        "CreateConsoleLink",  # pier.platform.console.app.ConsoleLinkApi
        "SyncGateway",  # pier.platform.gateway_api.GatewaySyncApi
    }
    engine.dispose()
    assert served == set(POLICY)


def test_roles_grant_what_the_docs_say() -> None:
    assert set(ROLE_ACTIONS) == set(ROLES) == set(users_command.ROLES)
    assert users_command.ROLES == ROLES
    admin = principal("AK1", "s", "root", "admin", ACCOUNT)
    deployer = principal("AK2", "s", "dep", "deployer", ACCOUNT)
    invoker = principal("AK3", "s", "inv", "invoker", ACCOUNT)
    assert admin.may("SomeFutureOperation")  # admin: everything, classified or not
    assert not deployer.may("SomeFutureOperation")  # closed until classified
    assert deployer.may("CreateEndpoint")
    assert deployer.may("InvokeEndpoint")
    assert invoker.may("InvokeEndpoint")
    assert invoker.may("DescribeEndpoint")
    assert not invoker.may("CreateEndpoint")
    assert not invoker.may("PutMetricData")
    assert "secret" not in repr(admin)
    assert "'s'" not in repr(admin)


def test_the_audit_trail_names_the_resource_a_call_names() -> None:
    assert resource_arn(
        ARNS, "CreateEndpoint", {"EndpointName": "Churn", "EndpointConfigName": "c"}, "/"
    ) == ("arn:aws:sagemaker:us-east-1:000000000000:endpoint/churn")
    assert resource_arn(ARNS, "InvokeEndpoint", None, "/endpoints/churn/invocations") == (
        "arn:aws:sagemaker:us-east-1:000000000000:endpoint/churn"
    )
    assert resource_arn(ARNS, "DeleteAlarms", {"AlarmNames": ["a", "b"]}, "/") == (
        "arn:aws:cloudwatch:us-east-1:000000000000:alarm:a,"
        "arn:aws:cloudwatch:us-east-1:000000000000:alarm:b"
    )
    assert resource_arn(
        ARNS, "StartMonitoringExecution", None, "/pier/monitoring-schedules/Drift/executions"
    ) == ("arn:aws:sagemaker:us-east-1:000000000000:monitoring-schedule/drift")
    assert resource_arn(ARNS, "PutMetricData", {"Namespace": "x"}, "/") is None


def test_a_refused_call_is_audited_with_the_resource_its_body_names(tmp_path: Path) -> None:
    """Refused before its API decoded it, a call's body is read (off the loop) for names."""
    engine = db.create(f"sqlite:///{tmp_path}/pier.db")
    db.migrate(engine)
    store = AuditStore(db.sessions(engine))
    trail = AuditTrail(store, ARNS)
    caller = principal("AK3", "s", "inv", "invoker", ACCOUNT)
    for content_type, body in (
        ("application/x-amz-json-1.1", orjson.dumps({"EndpointName": "Churn"})),
        ("application/cbor", cbor2.dumps({"AlarmNames": ["high"]})),
        ("application/x-amz-json-1.1", b"not json"),
    ):
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "client": ("10.0.0.7", 5000),
            "headers": [(b"content-type", content_type.encode())],
        }
        request = Request(scope, {"content-type": content_type}, body, 0)
        trail(caller, "DeleteEndpoint", request, 400, "AccessDeniedException")
    asyncio.run(trail.flush())
    events = store.query()
    engine.dispose()
    assert [(e.resource, e.source, e.user, e.error_code) for e in reversed(events)] == [
        (
            "arn:aws:sagemaker:us-east-1:000000000000:endpoint/churn",
            "10.0.0.7",
            "inv",
            "AccessDeniedException",
        ),
        (
            "arn:aws:cloudwatch:us-east-1:000000000000:alarm:high",
            "10.0.0.7",
            "inv",
            "AccessDeniedException",
        ),
        (None, "10.0.0.7", "inv", "AccessDeniedException"),
    ]
