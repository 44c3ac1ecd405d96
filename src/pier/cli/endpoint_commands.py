"""`pier endpoints`, `describe`, `invoke`: everyday work with endpoints.

Thin clients of the platform's SageMaker API (boto3 against `pier up`), like users' own code:
nothing here reads the state store. Every AWS error ends the command with one line
`error: <Code>: <Message>` and exit 1; bad arguments exit 2.
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from pier.cli.common import (
    HomeOption,
    JsonOption,
    aws_errors,
    compact,
    connect,
    err,
    fail,
    out,
    platform_settings,
    print_json,
    show,
    table,
    unless_gone,
)
from pier.platform.home import Home


def _status(status: str) -> str:
    color = {"InService": "green", "Failed": "red", "OutOfService": "red"}.get(status, "yellow")
    return f"[{color}]{escape(status)}[/{color}]"


def _time(t: datetime | None) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _weight(v: dict[str, Any], total: float) -> str:
    current, desired = v.get("CurrentWeight", 0.0), v.get("DesiredWeight", 0.0)
    text = f"{current:g}" + (f" ({current / total:.0%})" if total else "")
    return text if desired == current else f"{text} → {desired:g}"


def _instances(v: dict[str, Any]) -> str:
    return f"{v.get('CurrentInstanceCount', 0)}/{v.get('DesiredInstanceCount', 0)}"


def _variant_status(v: dict[str, Any]) -> str:
    return ", ".join(s["Status"] for s in v.get("VariantStatus", [])) or "-"


# ------------------------------------------------------------------------------ endpoints


def endpoints(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List endpoints: status, variants, weights (traffic share) and instance counts."""
    sm = connect(home)
    found: list[dict[str, Any]] = []
    with aws_errors():
        for page in sm.get_paginator("list_endpoints").paginate():
            for e in page["Endpoints"]:
                d = unless_gone(sm.describe_endpoint, EndpointName=e["EndpointName"])
                if d is not None:  # (else deleted since it was listed)
                    found.append(d)
    found.sort(key=lambda d: d["EndpointName"])
    if as_json:
        print_json(found)
        return
    if not found:
        out.print("no endpoints")
        return
    listing = compact(
        "endpoint", "status", "variant", "weight", "instances", "last modified",
        whole=("endpoint", "variant"),
    )  # fmt: skip
    for d in found:
        variants = d.get("ProductionVariants") or [{}]
        total = sum(v.get("CurrentWeight", 0.0) for v in variants)
        for i, v in enumerate(variants):
            first = i == 0
            listing.add_row(
                escape(d["EndpointName"]) if first else "",
                _status(d["EndpointStatus"]) if first else "",
                escape(v.get("VariantName", "-")),
                _weight(v, total) if v else "-",
                _instances(v) if v else "-",
                _time(d.get("LastModifiedTime")) if first else "",
                end_section=i == len(variants) - 1,
            )
    show(listing)


# ------------------------------------------------------------------------------- describe


def _gather(sm: Any, name: str) -> dict[str, Any]:
    """DescribeEndpoint, plus its EndpointConfig and Models (None where deleted since)."""
    endpoint = sm.describe_endpoint(EndpointName=name)
    endpoint.pop("ResponseMetadata", None)
    config = unless_gone(
        sm.describe_endpoint_config, EndpointConfigName=endpoint["EndpointConfigName"]
    )
    models: dict[str, Any] = {}
    for v in (config or {}).get("ProductionVariants", []):
        if v["ModelName"] not in models:
            models[v["ModelName"]] = unless_gone(sm.describe_model, ModelName=v["ModelName"])
    return {**endpoint, "EndpointConfig": config, "Models": models}


def _deployments(sm: Any, home: Path | None, name: str) -> list[dict[str, Any]]:
    """pier's deployment history of the endpoint (GET /pier/endpoints/NAME/deployments,
    signed like the SageMaker API), newest first."""
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    h = Home(platform_settings(home=home).home)
    creds = h.credentials(create=False)
    if creds is None:
        raise fail(f"no credentials in pier's home {h.root}; restart it with pier up --detach")
    target = f"{sm.meta.endpoint_url}/pier/endpoints/{name}/deployments"
    request = AWSRequest(method="GET", url=target, data=b"")
    signer = Credentials(creds.access_key_id, creds.secret_access_key)
    SigV4Auth(signer, "sagemaker", sm.meta.region_name).add_auth(request)
    try:
        response = httpx.get(target, headers=dict(request.headers.items()), timeout=60)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach pier at {sm.meta.endpoint_url}: {exc}") from None
    body: dict[str, Any] = response.json() if response.content else {}
    if response.status_code != 200:
        raise fail(f"{body.get('__type', response.status_code)}: {body.get('message', '')}")
    return list(body.get("Deployments", []))


def _epoch(t: float | None) -> str:
    return _time(datetime.fromtimestamp(t).astimezone()) if t else "-"


def _progress(d: dict[str, Any]) -> str:
    """The update in progress, in lines: step, share on the new fleet, next step, alarms."""
    if d["Step"] == 0:
        step = "launching the new fleet"
    else:
        step = f"{d['Step']} of {d['Steps']}: {escape(d.get('StepLabel') or '')}"
    lines = [
        f"update      {escape(d['FromConfig'])} → {escape(d['ToConfig'])} ({escape(d['Policy'])})",
        f"step        {step}",
        f"new fleet   {d['Share']:.0%} of the traffic",
    ]
    if d.get("NextStepInSeconds") is not None:
        last = d["Step"] == d["Steps"]
        lines.append(f"{'done in' if last else 'next step'}   {d['NextStepInSeconds']:.0f} s")
    alarms = ", ".join(escape(a) for a in d["Alarms"]) or "none"
    lines.append(f"alarms      {alarms} (one in ALARM rolls back)")
    return "\n".join(lines)


def _history(deployments: list[dict[str, Any]]) -> Table:
    history = table("started", "update", "policy", "outcome", "reason", title="deployments")
    colors = {"Succeeded": "green", "InProgress": "yellow"}
    for d in deployments:
        color = colors.get(d["Status"], "red")
        history.add_row(_epoch(d["StartTime"]),
                      f"{escape(d['FromConfig'])} → {escape(d['ToConfig'])}",
                      escape(d["Policy"]), f"[{color}]{escape(d['Status'])}[/{color}]",
                      escape(d.get("Reason") or "-"))  # fmt: skip
    return history


def _containers(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [model["PrimaryContainer"]] if "PrimaryContainer" in model else model["Containers"]


def describe(
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Describe an endpoint: its variants, the update in progress (step, share on the new
    fleet, time to the next step, alarms watched), its last deployments, its endpoint config
    and its models' containers."""
    sm = connect(home)
    with aws_errors():
        d = _gather(sm, name)
    deployments = _deployments(sm, home, name)
    if as_json:
        print_json({**d, "Deployments": deployments})
        return
    lines = [
        f"status      {_status(d['EndpointStatus'])}",
        f"config      {escape(d['EndpointConfigName'])}"
        + ("" if d["EndpointConfig"] else " [red](deleted)[/red]"),
        f"created     {_time(d.get('CreationTime'))}",
        f"modified    {_time(d.get('LastModifiedTime'))}",
        f"arn         {escape(d['EndpointArn'])}",
    ]
    if d.get("FailureReason"):
        lines.append(f"[red]failure[/red]     {escape(d['FailureReason'])}")
    show(Panel("\n".join(lines), title=f"endpoint {escape(name)}", title_align="left"))
    variants = table(
        "variant", "weight", "instances", "status", "image", title="variants", whole=("variant",)
    )
    total = sum(v.get("CurrentWeight", 0.0) for v in d["ProductionVariants"])
    for v in d["ProductionVariants"]:
        images = ", ".join(i.get("ResolvedImage", "-") for i in v.get("DeployedImages", []))
        variants.add_row(escape(v["VariantName"]), _weight(v, total), _instances(v),
                         _variant_status(v), escape(images or "-"))  # fmt: skip
    show(variants)
    current = [x for x in deployments if x["Status"] == "InProgress"]
    if current:
        show(Panel(_progress(current[0]), title="deployment in progress", title_align="left"))
    if deployments:
        show(_history(deployments))
    if d["EndpointConfig"]:
        columns = ("variant", "model", "instance type", "initial weight", "initial count")
        config = table(
            *columns, title=f"endpoint config {escape(d['EndpointConfigName'])}",
            whole=("variant", "model"),
        )  # fmt: skip
        for v in d["EndpointConfig"]["ProductionVariants"]:
            config.add_row(escape(v["VariantName"]), escape(v["ModelName"]),
                           v.get("InstanceType", "-"), f"{v.get('InitialVariantWeight', 1.0):g}",
                           str(v.get("InitialInstanceCount", "-")))  # fmt: skip
        show(config)
    for model_name, model in d["Models"].items():
        title = f"model {escape(model_name)}"
        containers = table("image", "model data", "environment", title=title)
        if model is None:
            containers.add_row("[red](deleted)[/red]", "", "")
        for c in _containers(model or {"Containers": []}):
            env = "\n".join(f"{k}={v}" for k, v in c.get("Environment", {}).items())
            containers.add_row(escape(c.get("Image", "-")), escape(c.get("ModelDataUrl", "-")),
                               escape(env or "-"))  # fmt: skip
        show(containers)


# --------------------------------------------------------------------------------- invoke


def _read_body(body: str) -> bytes:
    if body == "@-":
        return sys.stdin.buffer.read()
    if body.startswith("@"):
        try:
            return Path(body[1:]).read_bytes()
        except OSError as exc:
            raise fail(f"--body: cannot read {body[1:]}: {exc.strerror}", 2) from None
    return body.encode()


def _acceptable(content_type: str | None, accept: str) -> bool:
    """Whether an answer of `content_type` is one `accept` (an Accept header) asks for."""
    answered = (content_type or "").split(";")[0].strip().lower()
    kind = answered.split("/")[0] + "/*"
    for item in accept.split(","):
        mime, *params = (p.strip().lower() for p in item.split(";"))
        if "q=0" in params or "q=0.0" in params:
            continue
        if mime in ("*/*", kind, answered):
            return True
    return False


def invoke(
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    body: Annotated[
        str, typer.Option(help="The request: @file, @- for stdin, or the payload itself.")
    ],
    content_type: Annotated[str, typer.Option(help="The body's type.")] = "application/json",
    accept: Annotated[str | None, typer.Option(help="The response type to ask for.")] = None,
    variant: Annotated[
        str | None, typer.Option(help="Send to this production variant (TargetVariant).")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Invoke an endpoint (InvokeEndpoint) and print the answer; the variant goes to stderr."""
    payload = _read_body(body)
    rt = connect(home, "sagemaker-runtime")
    request: dict[str, Any] = {"EndpointName": name, "Body": payload, "ContentType": content_type}
    if accept:
        request["Accept"] = accept
    if variant:
        request["TargetVariant"] = variant
    with aws_errors():
        response = rt.invoke_endpoint(**request)
        answer: bytes = response["Body"].read()
    answered, answer_type = response.get("InvokedProductionVariant"), response.get("ContentType")
    if accept and not _acceptable(answer_type, accept):
        raise fail(
            f"--accept {accept}: variant {answered} cannot produce it and answered "
            f"{answer_type or 'without a content type'} (pier's model server writes "
            "application/json, text/csv and application/jsonlines)"
        )
    parsed: Any = None
    if "json" in (answer_type or ""):
        with contextlib.suppress(ValueError):
            parsed = json.loads(answer)
    if as_json:
        text = answer.decode("utf-8", "replace")
        print_json({"variant": answered, "content_type": answer_type,
                    "body": text if parsed is None else parsed})  # fmt: skip
        return
    if parsed is not None:
        typer.echo(json.dumps(parsed, indent=2))
    else:
        sys.stdout.buffer.write(answer if answer.endswith(b"\n") or not answer else answer + b"\n")
        sys.stdout.flush()
    err.print(f"[dim]variant: {escape(str(answered))}[/dim]")
