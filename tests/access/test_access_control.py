"""Access control and the audit trail, against a real `pier up` and boto3 clients per user.

One platform for the module (SQLite, no endpoint: authorization is decided before any
resource is looked at). Users are made with the real `pier users` command. Every operation of
every signed API (SageMaker's control API, the runtime, CloudWatch in CBOR and in JSON 1.0,
ground truth, pier's monitoring routes) is called by every role: a role without the right gets
AccessDenied in the API's dialect and status; a role with it gets anything else (most calls
name resources that do not exist, so "anything else" is usually a not-found error: the
authorization passed). Then rotation with a grace period, removal, the audit trail, the
commands docs/security.md shows, and a grep of every file of the home for every secret.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from pier.platform.access import POLICY, ROLE_ACTIONS
from pier.store import db
from pier.store.audit import AuditStore
from tests.boto3.platform_fixtures import (
    BIN,
    NO_RETRIES,
    REGION,
    Platform,
    platform_env,
    running_platform,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("admin", "deployer", "invoker")
NOW = datetime.now(UTC)
ENDPOINT_ARN = "arn:aws:sagemaker:us-east-1:000000000000:endpoint/acl-none"
VARIANT = {
    "VariantName": "v",
    "ModelName": "acl-none",
    "InitialInstanceCount": 1,
    "InstanceType": "ml.m5.large",
}
QUERY = {
    "Id": "q",
    "MetricStat": {"Metric": {"Namespace": "acl", "MetricName": "m"}, "Period": 60, "Stat": "Sum"},
}


@dataclass
class User:
    name: str
    role: str
    key_id: str
    secret: str


def pier(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real `pier` command on `home`."""
    result = subprocess.run(
        [str(BIN / "pier"), *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env={**platform_env(), "COLUMNS": "200"},
        timeout=120,
    )
    if check:
        assert result.returncode == 0, f"pier {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


@dataclass
class Site:
    platform: Platform
    users: dict[str, User]
    secrets: list[str]  # every secret handed out in this module, for the grep at the end
    clients: dict[tuple[str, str], Any] = field(default_factory=dict)

    def client(self, service: str, user: User) -> Any:
        """A boto3 client of `service` with `user`'s key (one per key: clients are slow to
        make)."""
        key = (service, user.key_id)
        if key not in self.clients:
            self.clients[key] = self._client(service, user)
        return self.clients[key]

    def _client(self, service: str, user: User) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.platform.url,
            region_name=REGION,
            aws_access_key_id=user.key_id,
            aws_secret_access_key=user.secret,
            config=NO_RETRIES,
        )

    def add_user(self, name: str, role: str) -> User:
        shown = json.loads(
            pier("users", "add", name, "--role", role, "--json", home=self.platform.home).stdout
        )
        user = User(name, role, shown["access_key_id"], shown["secret_access_key"])
        self.secrets.append(user.secret)
        return user

    def signed(
        self,
        user: User,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        service: str = "sagemaker",
    ) -> httpx.Response:
        """A request signed with SigV4 as botocore signs it, sent with httpx."""
        request = AWSRequest(method, self.platform.url + path, data=body, headers=headers)
        SigV4Auth(BotoCredentials(user.key_id, user.secret), service, REGION).add_auth(request)
        return httpx.request(
            method,
            self.platform.url + path,
            content=body,
            headers=dict(request.headers.items()),
            timeout=30,
        )


def works(site: Site, user: User) -> bool:
    """Whether the platform takes `user`'s key now (ListEndpoints)."""
    try:
        site.client("sagemaker", user).list_endpoints()
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "UnrecognizedClientException":
            raise
        return False
    return True


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("access") / "home"
    with running_platform(home) as platform:
        s = Site(platform, {}, [platform.credentials()["secret_access_key"]])
        for role in ROLES:
            s.users[role] = s.add_user(f"role-{role}", role)
        for user in s.users.values():
            wait_for(lambda u=user: works(s, u), 10, what=f"{user.name}'s key to work")
        yield s


# ------------------------------------------------------------------------ the matrix

# (api, operation) -> a call of it as `user`, raising ClientError or answering an httpx.Response
Call = Callable[[Site, User], Any]


def sm(operation: str, **params: Any) -> Call:
    return lambda site, user: getattr(site.client("sagemaker", user), _snake(operation))(**params)


def cw(operation: str, **params: Any) -> Call:
    return lambda site, user: getattr(site.client("cloudwatch", user), _snake(operation))(**params)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


SAGEMAKER: dict[str, Call] = {
    "CreateModel": lambda site, user: site.client("sagemaker", user).create_model(
        ModelName=f"acl-{user.role}", PrimaryContainer={"ModelDataUrl": "/nonexistent/acl"}
    ),
    "DescribeModel": sm("DescribeModel", ModelName="acl-none"),
    "ListModels": sm("ListModels"),
    "DeleteModel": sm("DeleteModel", ModelName="acl-none"),
    "CreateEndpointConfig": sm(
        "CreateEndpointConfig", EndpointConfigName="acl-none", ProductionVariants=[VARIANT]
    ),
    "DescribeEndpointConfig": sm("DescribeEndpointConfig", EndpointConfigName="acl-none"),
    "ListEndpointConfigs": sm("ListEndpointConfigs"),
    "DeleteEndpointConfig": sm("DeleteEndpointConfig", EndpointConfigName="acl-none"),
    "CreateEndpoint": sm("CreateEndpoint", EndpointName="acl-none", EndpointConfigName="acl-none"),
    "DescribeEndpoint": sm("DescribeEndpoint", EndpointName="acl-none"),
    "ListEndpoints": sm("ListEndpoints"),
    "UpdateEndpoint": sm("UpdateEndpoint", EndpointName="acl-none", EndpointConfigName="acl-none"),
    "UpdateEndpointWeightsAndCapacities": sm(
        "UpdateEndpointWeightsAndCapacities",
        EndpointName="acl-none",
        DesiredWeightsAndCapacities=[{"VariantName": "v", "DesiredWeight": 1.0}],
    ),
    "DeleteEndpoint": sm("DeleteEndpoint", EndpointName="acl-none"),
    "AddTags": sm("AddTags", ResourceArn=ENDPOINT_ARN, Tags=[{"Key": "k", "Value": "v"}]),
    "ListTags": sm("ListTags", ResourceArn=ENDPOINT_ARN),
    "DeleteTags": sm("DeleteTags", ResourceArn=ENDPOINT_ARN, TagKeys=["k"]),
    "CreateMonitoringSchedule": sm(
        "CreateMonitoringSchedule",
        MonitoringScheduleName="acl-none",
        MonitoringScheduleConfig={
            "MonitoringJobDefinitionName": "acl-none",
            "MonitoringType": "DataQuality",
        },
    ),
    "DescribeMonitoringSchedule": sm(
        "DescribeMonitoringSchedule", MonitoringScheduleName="acl-none"
    ),
    "ListMonitoringSchedules": sm("ListMonitoringSchedules"),
    "DeleteMonitoringSchedule": sm("DeleteMonitoringSchedule", MonitoringScheduleName="acl-none"),
    "StopMonitoringSchedule": sm("StopMonitoringSchedule", MonitoringScheduleName="acl-none"),
    "StartMonitoringSchedule": sm("StartMonitoringSchedule", MonitoringScheduleName="acl-none"),
    "ListMonitoringExecutions": sm("ListMonitoringExecutions"),
    "CreateInferenceExperiment": sm(
        "CreateInferenceExperiment",
        Name="acl-none",
        Type="ShadowMode",
        RoleArn="arn:aws:iam::000000000000:role/acl",
        EndpointName="acl-none",
        ModelVariants=[
            {
                "ModelName": "acl-none",
                "VariantName": "shadow",
                "InfrastructureConfig": {
                    "InfrastructureType": "RealTimeInference",
                    "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                },
            }
        ],
        ShadowModeConfig={
            "SourceModelVariantName": "v",
            "ShadowModelVariants": [{"ShadowModelVariantName": "shadow", "SamplingPercentage": 50}],
        },
    ),
    "DescribeInferenceExperiment": sm("DescribeInferenceExperiment", Name="acl-none"),
    "ListInferenceExperiments": sm("ListInferenceExperiments"),
    "StartInferenceExperiment": sm("StartInferenceExperiment", Name="acl-none"),
    "StopInferenceExperiment": sm(
        "StopInferenceExperiment", Name="acl-none", ModelVariantActions={"shadow": "Remove"}
    ),
}

# CloudWatch's operations: their parameters, sent by boto3 (CBOR) and by hand (JSON 1.0).
CLOUDWATCH: dict[str, dict[str, Any]] = {
    "GetMetricData": {
        "MetricDataQueries": [QUERY],
        "StartTime": NOW - timedelta(hours=1),
        "EndTime": NOW,
    },
    "GetMetricStatistics": {
        "Namespace": "acl",
        "MetricName": "m",
        "Period": 60,
        "StartTime": NOW - timedelta(hours=1),
        "EndTime": NOW,
        "Statistics": ["Sum"],
    },
    "ListMetrics": {},
    "PutMetricData": {"Namespace": "acl", "MetricData": [{"MetricName": "m", "Value": 1.0}]},
    "PutMetricAlarm": {
        "AlarmName": "acl-alarm",
        "MetricName": "m",
        "Namespace": "acl",
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanThreshold",
    },
    "DescribeAlarms": {},
    "DescribeAlarmsForMetric": {"MetricName": "m", "Namespace": "acl"},
    "DescribeAlarmHistory": {},
    "DeleteAlarms": {"AlarmNames": ["acl-none"]},
    "SetAlarmState": {"AlarmName": "acl-none", "StateValue": "OK", "StateReason": "test"},
    "EnableAlarmActions": {"AlarmNames": ["acl-none"]},
    "DisableAlarmActions": {"AlarmNames": ["acl-none"]},
}


def cloudwatch_json(operation: str) -> Call:
    """CloudWatch's AWS JSON 1.0 dialect (POST / with X-Amz-Target), timestamps as epochs."""

    def epoch(value: Any) -> Any:
        return value.timestamp() if isinstance(value, datetime) else value

    def call(site: Site, user: User) -> httpx.Response:
        body = json.dumps({k: epoch(v) for k, v in CLOUDWATCH[operation].items()}).encode()
        headers = {
            "content-type": "application/x-amz-json-1.0",
            "x-amz-target": f"GraniteServiceVersion20100801.{operation}",
        }
        return site.signed(user, "POST", "/", body, headers, service="monitoring")

    return call


OWN_ROUTES: dict[str, Call] = {
    "InvokeEndpoint": lambda site, user: site.client("sagemaker-runtime", user).invoke_endpoint(
        EndpointName="acl-none", Body=b"{}", ContentType="application/json"
    ),
    "PutGroundTruth": lambda site, user: site.signed(
        user,
        "POST",
        "/endpoints/acl-none/ground-truth",
        b"{}\n",
        {"content-type": "application/jsonlines"},
    ),
    "StartMonitoringExecution": lambda site, user: site.signed(
        user, "POST", "/pier/monitoring-schedules/acl-none/executions", b"", {}
    ),
    "GetMonitoringReport": lambda site, user: site.signed(
        user, "GET", "/pier/monitoring-schedules/acl-none/report", b"", {}
    ),
    "ListEndpointDeployments": lambda site, user: site.signed(
        user, "GET", "/pier/endpoints/acl-none/deployments", b"", {}
    ),
    "CreateConsoleLink": lambda site, user: site.signed(user, "POST", "/console/links", b"", {}),
    "SyncGateway": lambda site, user: site.signed(user, "POST", "/pier/gateway/sync", b"", {}),
}

# (api, operation, call, the denial's (status, code) in that API's dialect)
CASES: list[tuple[str, str, Call, tuple[int, str]]] = [
    *(("sagemaker", op, call, (400, "AccessDeniedException")) for op, call in SAGEMAKER.items()),
    *(
        ("cloudwatch-cbor", op, cw(op, **params), (403, "AccessDenied"))
        for op, params in CLOUDWATCH.items()
    ),
    *(("cloudwatch-json", op, cloudwatch_json(op), (403, "AccessDenied")) for op in CLOUDWATCH),
    (
        "sagemaker-runtime",
        "InvokeEndpoint",
        OWN_ROUTES["InvokeEndpoint"],
        (400, "AccessDeniedException"),
    ),
    *(
        ("pier", op, call, (400, "AccessDeniedException"))
        for op, call in OWN_ROUTES.items()
        if op != "InvokeEndpoint"
    ),
]


def test_every_classified_operation_is_called_here() -> None:
    assert {op for _, op, _, _ in CASES} == set(POLICY)


def answer(call: Call, site: Site, user: User) -> tuple[int, str | None]:
    """(HTTP status, error code or None) of a call; boto3's view of the code, or the
    dialect's (x-amzn-query-error's for CloudWatch JSON, x-amzn-ErrorType otherwise)."""
    try:
        response = call(site, user)
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]
    if isinstance(response, httpx.Response):
        if response.status_code < 400:
            return response.status_code, None
        query = response.headers.get("x-amzn-query-error")
        code = query.split(";")[0] if query else response.headers.get("x-amzn-errortype")
        return response.status_code, code
    return response["ResponseMetadata"]["HTTPStatusCode"], None


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("api", "operation", "call", "denial"), CASES, ids=[f"{api}-{op}" for api, op, _, _ in CASES]
)
def test_a_role_without_the_right_is_denied_in_the_apis_dialect(
    site: Site, role: str, api: str, operation: str, call: Call, denial: tuple[int, str]
) -> None:
    user = site.users[role]
    allowed = POLICY[operation] in ROLE_ACTIONS[role]
    status, code = answer(call, site, user)
    if allowed:
        assert code not in ("AccessDenied", "AccessDeniedException"), (status, code)
        assert status < 500, (status, code)
    else:
        assert (status, code) == denial


def test_a_denial_names_the_user_the_action_and_the_role(site: Site) -> None:
    with pytest.raises(ClientError) as denied:
        site.client("sagemaker", site.users["invoker"]).delete_endpoint(EndpointName="x")
    error = denied.value.response["Error"]
    assert error["Message"] == (
        "User: arn:aws:iam::000000000000:user/role-invoker is not authorized to perform: "
        "sagemaker:DeleteEndpoint (role invoker; see docs/security.md)"
    )
    # the JSON 1.1 shape: __type and message, the code in x-amzn-ErrorType too
    response = site.signed(
        site.users["invoker"],
        "POST",
        "/",
        b"{}",
        {"content-type": "application/x-amz-json-1.1", "x-amz-target": "SageMaker.DeleteEndpoint"},
    )
    assert response.status_code == 400
    assert response.json()["__type"] == "AccessDeniedException"
    assert response.headers["x-amzn-errortype"] == "AccessDeniedException"


def test_a_deployer_deploys_and_an_invoker_reads_what_it_made(site: Site) -> None:
    """Allowed calls do their work: the deployer's model exists, the invoker can read it."""
    deployer, invoker = site.users["deployer"], site.users["invoker"]
    site.client("sagemaker", deployer).create_model(
        ModelName="acl-deployed", PrimaryContainer={"ModelDataUrl": "/nonexistent/acl"}
    )
    described = site.client("sagemaker", invoker).describe_model(ModelName="acl-deployed")
    assert described["ModelName"] == "acl-deployed"


# ------------------------------------------------------------------------ keys


def test_rotation_keeps_the_old_key_for_the_grace_period_then_drops_it(site: Site) -> None:
    user = site.add_user("rotating", "invoker")
    wait_for(lambda: works(site, user), 10, what="the new user's key")
    shown = json.loads(
        pier(
            "users", "rotate-key", "rotating", "--grace", "4s", "--json", home=site.platform.home
        ).stdout
    )
    new = User("rotating", "invoker", shown["access_key_id"], shown["secret_access_key"])
    site.secrets.append(new.secret)
    assert new.key_id != user.key_id
    wait_for(lambda: works(site, new), 10, what="the rotated key")
    assert works(site, user)  # both work during the grace period: no downtime
    wait_for(lambda: not works(site, user), 15, what="the old key to expire")
    assert works(site, new)


def test_the_home_credential_is_admin_and_its_rotation_rewrites_the_credentials_file(
    site: Site,
) -> None:
    home = site.platform.home
    listed = json.loads(pier("users", "list", "--json", home=home).stdout)
    old = site.platform.credentials()
    admin = next(u for u in listed if u["name"] == "admin")
    assert admin["role"] == "admin"
    assert [k["access_key_id"] for k in admin["access_keys"]] == [old["access_key_id"]]
    pier("users", "rotate-key", "admin", "--grace", "1h", home=home)
    new = site.platform.credentials()
    site.secrets.append(new["secret_access_key"])
    assert new["access_key_id"] != old["access_key_id"]
    assert stat.S_IMODE(os.stat(home / "credentials.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home / "server.key").st_mode) == 0o600
    before = User("admin", "admin", old["access_key_id"], old["secret_access_key"])
    after = User("admin", "admin", new["access_key_id"], new["secret_access_key"])
    wait_for(lambda: works(site, after), 10, what="the admin's new key")
    assert works(site, before)  # within its hour of grace
    refused = pier("users", "remove", "admin", home=home, check=False)
    assert refused.returncode == 1
    assert "holds this home's credential" in refused.stderr


def test_a_removed_user_is_refused(site: Site) -> None:
    user = site.add_user("leaving", "deployer")
    wait_for(lambda: works(site, user), 10, what="the new user's key")
    pier("users", "remove", "leaving", home=site.platform.home)
    wait_for(lambda: not works(site, user), 10, what="the removed user's key to stop")


BAD_COMMANDS = [
    (("users", "add", "bad name", "--role", "admin"), 1, "invalid user name 'bad name'"),
    (("users", "add", "x", "--role", "root"), 2, "'root' is not a role"),
    (("users", "add", "role-admin", "--role", "admin"), 1, "user role-admin exists"),
    (("users", "remove", "nobody"), 1, "no user nobody"),
    (("users", "rotate-key", "role-admin", "--grace", "soon"), 2, "--grace"),
    (("audit", "--since", "yesterday"), 2, "--since"),
]


def test_bad_user_commands_say_what_is_wrong_and_change_nothing(site: Site) -> None:
    before = pier("users", "list", "--json", home=site.platform.home).stdout
    for args, code, message in BAD_COMMANDS:
        result = pier(*args, home=site.platform.home, check=False)
        assert (result.returncode, message in result.stderr) == (code, True), result.stderr
        assert "Traceback" not in result.stderr
    assert pier("users", "list", "--json", home=site.platform.home).stdout == before


# ------------------------------------------------------------------------ the audit trail


def audit(site: Site, user: str | None = None) -> list[dict[str, Any]]:
    """The trail as the console reads it (AuditStore.query on the home's store, in-process:
    `pier audit` itself runs in the docs' commands and in test_the_audit_table_shows_the_calls)."""
    engine = db.create(f"sqlite:///{site.platform.home / 'pier.db'}")
    try:
        since = datetime.now(UTC) - timedelta(hours=1)
        events = AuditStore(db.sessions(engine)).query(since=since, user=user, limit=10_000)
    finally:
        engine.dispose()
    return [e.to_json() for e in events]


def test_the_audit_trail_holds_every_state_changing_and_denied_call_and_no_read(
    site: Site,
) -> None:
    deployer = site.users["deployer"]
    site.client("sagemaker", deployer).create_model(
        ModelName="acl-audited", PrimaryContainer={"ModelDataUrl": "/nonexistent/acl"}
    )
    wait_for(
        lambda: any(
            e["operation"] == "CreateModel"
            and e["resource"] == "arn:aws:sagemaker:us-east-1:000000000000:model/acl-audited"
            for e in audit(site, "role-deployer")
        ),
        10,
        what="the audited CreateModel",
    )
    events = audit(site)
    mine = [e for e in events if e["user"].startswith("role-")]
    operations = {e["operation"] for e in mine}
    # every write of the matrix, by whoever was allowed or denied it; no read, no invoke
    # that was allowed
    for op, action in POLICY.items():
        if action == "write":
            assert op in operations, op
    allowed_reads = [
        e
        for e in mine
        if POLICY.get(e["operation"]) != "write" and e["error_code"] != "AccessDeniedException"
    ]
    assert allowed_reads == []
    denied = [e for e in mine if e["error_code"] == "AccessDeniedException"]
    assert {e["user"] for e in denied} == {"role-invoker"}  # a deployer may do all of these
    # each denial of the matrix: every write, in CloudWatch's two dialects
    counts = {op: sum(e["operation"] == op for e in denied) for op in POLICY}
    for op, action in POLICY.items():
        if action == "write":
            assert counts[op] >= (2 if op in CLOUDWATCH else 1), op
    # a refused call names its resource too (read from its body after the answer)
    refused = {e["resource"] for e in denied if e["operation"] == "DeleteEndpoint"}
    assert "arn:aws:sagemaker:us-east-1:000000000000:endpoint/acl-none" in refused
    refused = {e["resource"] for e in denied if e["operation"] == "DeleteAlarms"}
    assert refused == {"arn:aws:cloudwatch:us-east-1:000000000000:alarm:acl-none"}
    sample = next(e for e in mine if e["operation"] == "CreateModel" and e["status"] == 200)
    assert sample["source"] == "127.0.0.1"
    assert sample["key_id"] == deployer.key_id
    assert set(sample) == {
        "at",
        "user",
        "key_id",
        "source",
        "operation",
        "resource",
        "status",
        "error_code",
        "id",
    }
    cli = [e for e in events if e["user"].startswith("cli:")]
    assert {e["operation"] for e in cli} >= {"CreateUser", "RotateAccessKey", "DeleteUser"}
    only = audit(site, "role-invoker")
    assert only
    assert {e["user"] for e in only} == {"role-invoker"}


def test_the_audit_table_shows_the_calls(site: Site) -> None:
    shown = pier(
        "audit", "--since", "1h", "--user", "role-deployer", home=site.platform.home
    ).stdout
    assert "CreateModel" in shown
    assert "role-deployer" in shown


# ------------------------------------------------------------------------ the docs


def test_the_commands_of_docs_security_run_as_written(site: Site) -> None:
    page = (ROOT / "docs" / "security.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", page, flags=re.S)
    commands = [line for b in blocks for line in b.splitlines() if line.startswith("pier ")]
    assert len(commands) >= 6
    env = {**platform_env(), "PIER_HOME": str(site.platform.home), "COLUMNS": "200"}
    for command in commands:
        result = subprocess.run(
            command, shell=True, capture_output=True, text=True, env=env, timeout=120
        )
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
        site.secrets += re.findall(r"secret access key\s+│?\s*(\S{40})", result.stdout)


# ------------------------------------------------------------------------ nothing leaks


def test_no_secret_is_in_any_file_of_the_home_nor_in_the_platform_output(site: Site) -> None:
    """Last in the module: every secret handed out (users, rotations, the docs' commands) is
    looked for in every file under the home (logs, the state database, captures...) but the
    credentials file, which holds the home's own key by design, in `pier up`'s output, and in
    what `pier users list` and `pier audit` print."""
    time.sleep(1.5)  # the audit trail's last batch is written
    files = [
        p for p in site.platform.home.rglob("*") if p.is_file() and p.name != "credentials.json"
    ]
    files += [p for p in site.platform.logs if p.exists()]
    assert any(p.name == "platform.log" for p in files)
    assert len(site.secrets) >= 7
    for path in files:
        data = path.read_bytes()
        for secret in site.secrets:
            assert secret.encode() not in data, f"a secret is in {path}"
    listed = pier("users", "list", home=site.platform.home).stdout
    audited = pier("audit", "--since", "1h", "--json", home=site.platform.home).stdout
    for secret in site.secrets:
        assert secret not in listed
        assert secret not in audited
