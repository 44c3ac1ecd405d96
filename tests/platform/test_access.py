"""The policy table (pier.platform.access): every operation every API serves is classified,
roles grant what docs/security.md says, and the CLI's copy of the roles matches the store's."""

from __future__ import annotations

from pathlib import Path

from pier.cli import users_command
from pier.contract.cloudwatch import operation_names
from pier.control.alarm_service import CloudWatchAlarmService
from pier.control.arns import ArnFactory
from pier.control.metrics_service import CloudWatchMetricsService
from pier.control.monitoring_service import MonitoringService
from pier.control.service import HostingService
from pier.monitor.alarms.runner import AlarmRunner
from pier.platform.access import POLICY, ROLE_ACTIONS, principal
from pier.platform.audit_trail import resource_arn
from pier.platform.cloudwatch_api import alarm_operations, metric_operations
from pier.platform.sagemaker_api import SageMakerApi
from pier.store import db
from pier.store.alarms import AlarmStore
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
    served = set(SageMakerApi(hosting, monitoring).operations.names()) | cloudwatch
    served |= {
        "InvokeEndpoint",
        "PutGroundTruth",
        "StartMonitoringExecution",
        "GetMonitoringReport",
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
