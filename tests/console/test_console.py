"""The web console in a real Chromium: sign in, the quickstart's endpoint, its charts, a
weight change seen by boto3, an invocation from the generated form, sign out; the security
properties (no page without a session, CSRF, cookie attributes, expiry, one-time links).

docs/console.md's commands run here too (`pier status`, `pier console-url`).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.boto3.platform_fixtures import Platform, wait_for
from tests.console.conftest import FILLERS, pier

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "console.md"


def sign_in(page: Any, platform: Platform, then: str = "/console/") -> None:
    creds = platform.credentials()
    page.goto(platform.url + then)
    page.fill("#access_key_id", creds["access_key_id"])
    page.fill("#secret_access_key", creds["secret_access_key"])
    page.click("#sign-in")
    page.wait_for_url(re.compile(re.escape(platform.url + then) + r"$"))


def load_ms(page: Any) -> float:
    """The page's load time from the browser's navigation timing (start to loadEventEnd)."""
    timing = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {start: n.startTime, end: n.loadEventEnd}; }"
    )
    return float(timing["end"] - timing["start"])


def test_nothing_is_served_without_a_session(stack: Platform, browser: Any) -> None:
    platform = stack
    context = browser.new_context()
    page = context.new_page()
    for path in ("/console/", "/console/endpoints/diabetes", "/console/alarms", "/console/x"):
        page.goto(platform.url + path)
        assert "/console/login?next=" in page.url, path
        assert page.locator("#sign-in").is_visible()
        assert "diabetes" not in page.locator("main").inner_text()
    # the sign-in page's own assets are served; actions and fragments are refused
    assert httpx.get(platform.url + "/console/static/console.css").status_code == 200
    r = httpx.post(
        platform.url + "/console/endpoints/diabetes/capacity",
        data={"variant0": "champion", "weight0": "0", "instances0": "1", "confirm": "yes"},
    )
    assert r.status_code == 401, r.text
    assert "Sign in first" in r.text
    assert "Traceback" not in r.text
    # a wrong secret is refused on the form
    page.goto(platform.url + "/console/login")
    page.fill("#access_key_id", platform.credentials()["access_key_id"])
    page.fill("#secret_access_key", "not-the-secret")
    page.click("#sign-in")
    assert "Wrong access key or secret." in page.locator(".flash").inner_text()
    assert page.context.cookies()[0]["name"] == "pier_console"
    page.goto(platform.url + "/console/")
    assert "/console/login" in page.url
    context.close()


def test_the_quickstart_endpoint_charts_weights_invoke_sign_out(
    stack: Platform, browser: Any, shots: Path
) -> None:
    platform = stack
    sm = platform.client("sagemaker")
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    sign_in(page, platform)

    # the list: the quickstart's endpoint and its variants
    page.goto(platform.url + "/console/")
    list_ms = load_ms(page)
    rows = page.locator("tr[data-endpoint]")
    assert rows.count() == FILLERS + 1
    row = page.locator('tr[data-endpoint="diabetes"]')
    assert "InService" in row.inner_text()
    assert re.search(r"champion 0\.9 × 1", row.inner_text())
    assert re.search(r"challenger 0\.1 × 1", row.inner_text())
    assert row.locator("a.mlflow").count() == 0  # models from directories: no registry link
    page.screenshot(path=str(shots / "endpoints.png"), full_page=True)

    # one endpoint: variants, healthy instances with their logs
    page.click('tr[data-endpoint="diabetes"] td a')
    page.wait_for_url(re.compile(r"/console/endpoints/diabetes$"))
    endpoint_ms = load_ms(page)
    assert page.locator("#endpoint-status").inner_text() == "InService"
    instances = page.locator("details.instance")
    assert instances.count() == 2
    assert "Healthy" in instances.nth(0).locator("summary").inner_text()
    assert instances.nth(0).locator("pre.log").inner_text().strip()
    if os.environ.get("PIER_CONSOLE_DOCS_SCREENSHOT"):
        page.screenshot(path=str(ROOT / "docs" / "img" / "console.png"))
    page.screenshot(path=str(shots / "endpoint.png"), full_page=True)

    # its charts: per variant, invocations of the quickstart's calls (1-minute points)
    page.click("#charts-link")
    page.wait_for_url(re.compile(r"/charts$"))
    charts_ms = load_ms(page)
    champion = page.locator('section[data-variant="champion"]')
    for metric in ("Invocations", "Errors (4XX / 5XX)", "ModelLatency", "OverheadLatency"):
        assert champion.locator(f'figure[data-metric="{metric}"] svg').count() == 1
    invocations = champion.locator('figure[data-metric="Invocations"]')
    assert invocations.locator("polyline, circle").count() >= 1
    assert "no data" not in invocations.inner_text()
    latency = champion.locator('figure[data-metric="ModelLatency"] .latest').inner_text()
    assert float(latency.replace(",", "")) > 0
    page.click("#range-6h")
    page.wait_for_url(re.compile(r"range=6h$"))
    assert page.locator("#range-6h.current").count() == 1
    page.screenshot(path=str(shots / "charts.png"), full_page=True)

    # change the challenger's weight: boto3's DescribeEndpoint sees it
    page.goto(platform.url + "/console/endpoints/diabetes")
    page.fill("#weight-challenger", "0.5")
    page.check("#confirm-capacity")
    page.click("#apply-capacity")
    page.wait_for_url(re.compile(r"/console/endpoints/diabetes$"))
    assert "UpdateEndpointWeightsAndCapacities" in page.locator(".flash").inner_text()

    def weights() -> dict[str, float] | None:
        d = sm.describe_endpoint(EndpointName="diabetes")
        found = {v["VariantName"]: v["CurrentWeight"] for v in d["ProductionVariants"]}
        return found if d["EndpointStatus"] == "InService" and found["challenger"] == 0.5 else None

    assert wait_for(weights, timeout=60, what="the new weight") == {
        "champion": 0.9,
        "challenger": 0.5,
    }

    # invoke from the form the model's signature generates, the input example prefilled
    page.click("#invoke-link")
    page.wait_for_url(re.compile(r"/invoke$"))
    example = json.loads(
        (platform.home.parent / "champion" / "serving_input_example.json").read_text()
    )["dataframe_split"]
    headers = [h.split()[0] for h in page.locator("table.fields thead th").all_inner_texts()[1:]]
    assert headers == example["columns"]
    assert float(page.input_value("#r0c2")) == pytest.approx(example["data"][0][2])
    page.select_option("#variant", "challenger")
    page.click("#invoke")
    result = page.locator("#invoke-result")
    result.wait_for()
    assert page.locator("#invoked-variant").inner_text() == "challenger"
    answer = json.loads(page.locator("#invoke-body").inner_text())
    assert len(answer["predictions"]) == len(example["data"])
    expected = platform.client("sagemaker-runtime").invoke_endpoint(
        EndpointName="diabetes", TargetVariant="challenger", ContentType="application/json",
        Body=json.dumps({"dataframe_split": example}),
    )  # fmt: skip
    assert answer == json.loads(expected["Body"].read())
    page.screenshot(path=str(shots / "invoke.png"), full_page=True)
    # a value the column's type cannot hold: a clear error, nothing sent
    page.fill("#r0c0", "not-a-number")
    page.click("#invoke")
    error = page.locator("#invoke-error").inner_text()
    assert "row 1, column age (double)" in error

    # sign out: the session is gone, the cookie too
    page.click("#sign-out")
    page.wait_for_url(re.compile(r"/console/login$"))
    page.goto(platform.url + "/console/endpoints/diabetes")
    assert "/console/login" in page.url
    context.close()
    figures = {"list (50 endpoints)": list_ms, "endpoint": endpoint_ms, "charts": charts_ms}
    print("\nconsole page load (navigation timing, ms): " + json.dumps(figures))
    (shots / "timings.json").write_text(json.dumps(figures))


def test_csrf_and_the_cookie(stack: Platform, browser: Any) -> None:
    platform = stack
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, platform)
    [cookie] = context.cookies()
    assert cookie["name"] == "pier_console"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"
    assert time.time() + 7.9 * 3600 < cookie["expires"] < time.time() + 8.1 * 3600
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
    # a POST without the session's token, or with another, is refused; nothing changes
    target = platform.url + "/console/endpoints/diabetes/capacity"
    form = {"variant0": "champion", "weight0": "0", "instances0": "1", "confirm": "yes"}
    for token in (None, "x" * 43):
        data = dict(form, csrf=token) if token else form
        r = page.request.post(target, form=data, max_redirects=0)
        assert r.status == 403, r.text()
        assert "CSRF token is missing or wrong" in r.text()
    d = platform.client("sagemaker").describe_endpoint(EndpointName="diabetes")
    assert {v["VariantName"]: v["DesiredWeight"] for v in d["ProductionVariants"]}["champion"] > 0
    # an unconfirmed action is refused too, even with the token
    page.goto(platform.url + "/console/endpoints/diabetes")
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    r = page.request.post(target, form=dict(form, confirm="", csrf=csrf), max_redirects=0)
    assert r.status == 400
    assert "Tick the confirmation box" in r.text()
    headers = page.request.get(platform.url + "/console/").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    # malformed requests: a 4xx naming what is wrong, no trace, nothing changed
    bad = [
        (
            page.request.get(platform.url + "/console/endpoints/nope"),
            400,
            "Could not find endpoint",
        ),
        (
            page.request.get(platform.url + "/console/endpoints/diabetes/charts?range=7d"),
            400,
            "range must be one of 1h, 6h, 24h",
        ),
        (
            page.request.post(target, form=dict(form, csrf=csrf, weight0="abc")),
            400,
            "champion weight: &#39;abc&#39; is not a number",
        ),
        (
            page.request.post(target, form=dict(form, csrf=csrf, weight0="-1")),
            400,
            "member.desiredWeight&#39; failed to satisfy constraint",  # botocore's model
        ),
        (
            page.request.post(
                target, data=json.dumps(form), headers={"content-type": "application/json"}
            ),
            400,
            "The console takes forms",
        ),
        (page.request.get(platform.url + "/console/nothing-here"), 404, "No console page"),
    ]
    for response, status, words in bad:
        text = response.text()
        assert (response.status, words in text) == (status, True), text[-600:]
        assert "Traceback" not in text
    d = platform.client("sagemaker").describe_endpoint(EndpointName="diabetes")
    assert {v["VariantName"]: v["DesiredWeight"] for v in d["ProductionVariants"]}["champion"] > 0
    context.close()


def test_delete_an_endpoint_and_set_an_alarm_state(
    stack: Platform, browser: Any, shots: Path
) -> None:
    platform = stack
    sm, cw = platform.client("sagemaker"), platform.client("cloudwatch")
    cw.put_metric_alarm(
        AlarmName="diabetes/5xx", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": "diabetes"},
                    {"Name": "VariantName", "Value": "champion"}],
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching",
    )  # fmt: skip
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, platform, "/console/alarms")
    page.click("text=diabetes/5xx")  # a name with a slash: one path segment
    page.select_option("#state", "ALARM")
    page.fill("#reason", "<b>drill</b>")
    page.check("#confirm-state")
    page.click("#set-state")
    page.wait_for_url(re.compile(r"/console/alarms/diabetes%2F5xx$"))
    [alarm] = cw.describe_alarms(AlarmNames=["diabetes/5xx"])["MetricAlarms"]
    assert alarm["StateValue"] == "ALARM"
    assert alarm["StateReason"] == "<b>drill</b>"
    assert page.locator("#alarm-state").inner_text() == "ALARM"
    assert re.search(r"Alarm updated from \w+ to ALARM", page.locator("main").inner_text())
    assert page.locator("b", has_text="drill").count() == 0  # escaped, shown as text
    assert "<b>drill</b>" in page.locator("main").inner_text()
    # the monitoring page: no schedule, then one with an execution (pier monitor run)
    page.goto(platform.url + "/console/monitoring")
    assert "No monitoring schedule" in page.locator("main").inner_text()
    execution = monitored(platform)
    page.goto(platform.url + "/console/monitoring")
    schedule = page.locator("section.schedule")
    assert schedule.count() == 1
    assert "diabetes-drift" in schedule.locator("h2").inner_text()
    assert schedule.locator('a[href="/console/endpoints/diabetes"]').count() == 1
    # the captured requests repeat the two example rows: far from the training data
    assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations"
    assert "CompletedWithViolations" in schedule.inner_text()
    assert schedule.locator("tr.drifted").count() >= 1
    assert "baseline_drift_check" in schedule.inner_text()  # the violations table
    page.screenshot(path=str(shots / "monitoring.png"), full_page=True)
    page.goto(platform.url + "/console/endpoints/diabetes/capture")
    captured = page.locator("table.capture tbody tr")
    assert captured.count() == 20  # the latest 20 of the 40+ captured
    assert "dataframe_split" in captured.first.inner_text()
    assert "predictions" in captured.first.inner_text()
    # delete a filler endpoint: a wrong name is refused, the right one deletes it
    page.goto(platform.url + "/console/endpoints/filler-00")
    page.fill("#confirm-delete", "filler-0")
    page.click("#delete-endpoint")
    assert "Type the endpoint's name" in page.locator("#error-message").inner_text()
    page.goto(platform.url + "/console/endpoints/filler-00")
    page.fill("#confirm-delete", "filler-00")
    page.click("#delete-endpoint")
    page.wait_for_url(re.compile(r"/console/$"))

    def gone() -> bool:
        names = [e["EndpointName"] for e in sm.list_endpoints(MaxResults=100)["Endpoints"]]
        return "filler-00" not in names

    wait_for(gone, timeout=60, what="filler-00 deleted")
    context.close()


def monitored(platform: Platform) -> dict[str, Any]:
    """A DataQuality schedule on `diabetes` (a baseline from the training rows, `pier monitor
    baseline`), run once (`pier monitor run`); its execution as boto3 lists it."""
    from pier.demo.quickstart import load_data

    root = platform.home.parent
    load_data().X_train.to_csv(root / "train.csv", index=False)
    done = pier(platform.home, "monitor", "baseline", "--data", str(root / "train.csv"),
                "-o", str(root / "baseline"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    baseline = {
        "ConstraintsResource": {"S3Uri": (root / "baseline" / "constraints.json").as_uri()},
        "StatisticsResource": {"S3Uri": (root / "baseline" / "statistics.json").as_uri()},
    }
    sm = platform.client("sagemaker")
    sm.create_monitoring_schedule(
        MonitoringScheduleName="diabetes-drift",
        MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
            "MonitoringJobDefinition": {
                "BaselineConfig": baseline,
                "MonitoringInputs": [{"EndpointInput": {"EndpointName": "diabetes",
                                                        "LocalPath": "/opt/ml/processing/in"}}],
                "MonitoringOutputConfig": {"MonitoringOutputs": [
                    {"S3Output": {"S3Uri": (root / "reports").as_uri(),
                                  "LocalPath": "/opt/ml/processing/out"}}]},
                "MonitoringResources": {"ClusterConfig": {
                    "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 20}},
                "MonitoringAppSpecification": {"ImageUri": "pier/model-monitor"},
                "RoleArn": "arn:aws:iam::000000000000:role/pier",
            },
        },
    )  # fmt: skip
    ran = pier(platform.home, "monitor", "run", "diabetes-drift")
    assert "Traceback" not in ran.stderr
    [execution] = sm.list_monitoring_executions(MonitoringScheduleName="diabetes-drift")[
        "MonitoringExecutionSummaries"
    ]
    assert execution["MonitoringExecutionStatus"] not in ("Pending", "InProgress"), execution
    return dict(execution)


def test_a_stale_session_expires_and_a_one_time_link_signs_in_once(
    short_lived: Platform, browser: Any
) -> None:
    platform = short_lived
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, platform)
    assert page.locator("h1").inner_text().startswith("Endpoints")
    time.sleep(4.5)  # the session lasts 4 s on this platform
    page.goto(platform.url + "/console/alarms")
    assert "/console/login?next=%2Fconsole%2Falarms" in page.url
    context.close()

    done = pier(platform.home, "console-url")
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip()
    assert link.startswith(platform.url + "/console/link?token=")
    context = browser.new_context()
    page = context.new_page()
    page.goto(link)
    assert page.url == platform.url + "/console/"
    assert page.locator("#sign-out").is_visible()
    context.close()
    context = browser.new_context()  # the same link again: spent
    page = context.new_page()
    response = page.goto(link)
    assert response.status == 401
    assert "spent or expired" in page.locator("#error-message").inner_text()
    context.close()


def test_the_documented_commands(short_lived: Platform) -> None:
    """docs/console.md's commands, as written (with --home for this platform)."""
    [block] = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)[:1]
    commands = [line.split("#")[0].split() for line in block.splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["pier", "status"], ["pier", "console-url"]]
    status = pier(short_lived.home, "status")
    assert status.returncode == 0, status.stderr
    assert f"Console on {short_lived.url}/console/" in status.stdout
    link = pier(short_lived.home, "console-url")
    assert link.returncode == 0, link.stderr
    assert re.fullmatch(re.escape(short_lived.url) + r"/console/link\?token=[\w-]+\n", link.stdout)


def test_the_audit_trail_deployment_history_and_api_keys_pages(
    stack: Platform, browser: Any, shots: Path
) -> None:
    platform = stack
    sm = platform.client("sagemaker")
    key_id = platform.credentials()["access_key_id"]
    # a state-changing boto3 call: on the audit trail (written in batches: reload until there)
    sm.create_model(ModelName="audited-probe",
                    PrimaryContainer={"ModelDataUrl": str(platform.home / "nowhere")})  # fmt: skip
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, platform, "/console/audit")
    assert page.locator('header nav a[href="/console/audit"]').count() == 1

    def audited() -> bool:
        page.goto(platform.url + "/console/audit")
        rows = page.locator("#audit tbody tr")
        return any(
            "CreateModel" in text and "audited-probe" in text for text in rows.all_inner_texts()
        )

    wait_for(audited, timeout=30, what="CreateModel on the console's audit trail")
    row = page.locator("#audit tbody tr", has_text="audited-probe").first.inner_text()
    assert key_id in row
    assert "200" in row
    page.fill("#audit-user", "nobody-of-that-name")
    page.click("#audit-filter")
    page.wait_for_url(re.compile(r"/console/audit\?user=nobody-of-that-name$"))
    assert page.locator("#audit tbody tr").count() == 0
    assert "No audited call of nobody-of-that-name" in page.locator("main").inner_text()
    page.screenshot(path=str(shots / "audit.png"), full_page=True)
    # an UpdateEndpoint to a new config: a row of the endpoint's deployment history
    described = sm.describe_endpoint_config(EndpointConfigName="diabetes-1")
    sm.create_endpoint_config(
        EndpointConfigName="diabetes-2", ProductionVariants=described["ProductionVariants"]
    )
    sm.update_endpoint(EndpointName="diabetes", EndpointConfigName="diabetes-2")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="diabetes", WaiterConfig={"Delay": 2, "MaxAttempts": 150}
    )
    page.goto(platform.url + "/console/endpoints/diabetes")
    deployments = page.locator("#deployments tbody tr")
    assert deployments.count() >= 1
    newest = deployments.first.inner_text()
    assert "diabetes-1" in newest, newest
    assert "diabetes-2" in newest, newest
    assert "Succeeded" in newest, newest
    # a key made with `pier keys create`: listed on the keys page, never the key itself
    done = pier(platform.home, "keys", "create", "console-team", "--json")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    page.goto(platform.url + "/console/keys")
    listed = page.locator(f'#keys tbody tr[data-key="{made["KeyId"]}"]')
    assert listed.count() == 1
    assert "console-team" in listed.inner_text()
    assert "active" in listed.inner_text()
    assert made["Key"] not in page.content()
    page.screenshot(path=str(shots / "keys.png"), full_page=True)
    # revoked in the console (confirmed): the gateway refuses the key at once, and it is audited
    predict = f"{platform.url}/api/v1/diabetes/predict"
    body = {"dataframe_split": {"columns": ["x"], "data": [[0.0]]}}
    assert httpx.post(predict, json=body, headers={"x-api-key": made["Key"]}).status_code != 403
    listed.locator("input[name=confirm]").check()
    listed.locator("button.revoke").click()
    page.wait_for_url(re.compile(r"/console/keys$"))
    assert f"Revoked: key {made['KeyId']}" in page.locator("main").inner_text()
    assert "revoked" in page.locator(f'#keys tbody tr[data-key="{made["KeyId"]}"]').inner_text()
    refused = httpx.post(predict, json=body, headers={"x-api-key": made["Key"]})
    assert refused.status_code == 403, refused.text

    def revoke_audited() -> bool:
        page.goto(platform.url + "/console/audit")
        return any("RevokeApiKey" in t for t in page.locator("#audit tbody tr").all_inner_texts())

    wait_for(revoke_audited, timeout=30, what="RevokeApiKey on the audit trail")
    context.close()


def test_console_actions_follow_the_users_role(stack: Platform, browser: Any) -> None:
    """An `invoker` (docs/security.md) signed in to the console may read and invoke, not change
    weights nor revoke keys: 403 naming the role, nothing changed, and the denial audited."""
    platform = stack
    made = pier(platform.home, "users", "add", "console-invoker", "--role", "invoker", "--json")
    assert made.returncode == 0, made.stderr
    user = json.loads(made.stdout)
    keyed = {
        "aws_access_key_id": user["access_key_id"],
        "aws_secret_access_key": user["secret_access_key"],
    }

    def key_known() -> bool:  # the platform's key cache reloads every second
        try:
            platform.client("sagemaker", **keyed).list_endpoints()
        except Exception:
            return False
        return True

    wait_for(key_known, timeout=30, what="the new user's key at the platform")
    context = browser.new_context()
    page = context.new_page()
    page.goto(platform.url + "/console/")
    page.fill("#access_key_id", user["access_key_id"])
    page.fill("#secret_access_key", user["secret_access_key"])
    page.click("#sign-in")
    page.wait_for_url(re.compile(re.escape(platform.url) + r"/console/$"))
    page.goto(platform.url + "/console/endpoints/diabetes")
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    before = platform.client("sagemaker").describe_endpoint(EndpointName="diabetes")
    weights = {v["VariantName"]: v["DesiredWeight"] for v in before["ProductionVariants"]}
    form = {"variant0": "champion", "weight0": "0", "instances0": "1", "confirm": "yes"}
    r = page.request.post(
        platform.url + "/console/endpoints/diabetes/capacity",
        form=dict(form, csrf=csrf),
        max_redirects=0,
    )
    assert r.status == 403, r.text()
    assert "your role (invoker) does not allow it" in r.text()
    after = platform.client("sagemaker").describe_endpoint(EndpointName="diabetes")
    assert {v["VariantName"]: v["DesiredWeight"] for v in after["ProductionVariants"]} == weights
    context.close()
