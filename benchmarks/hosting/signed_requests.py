"""The requests: one POST, a SigV4 signature for wrk to replay, the instance's counters."""

from __future__ import annotations

import http.client
import re
from pathlib import Path

import loadgen  # (benchmarks/serving: wrk script, runner and parser)
import procs
from pier_platform import REGION, Platform


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(procs.HOST, port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def signed_headers(plat: Platform, path: str, body: bytes) -> dict[str, str]:
    """The headers of one request signed by botocore, to be replayed verbatim (15 min valid)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url=plat.url + path,
        data=body,
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(Credentials(plat.key_id, plat.secret), "sagemaker", REGION).add_auth(request)
    headers = {"Host": f"{procs.HOST}:{plat.port}"}  # signed, though botocore does not set it
    for name in ("Content-Type", "X-Amz-Date", "X-Amz-Content-SHA256", "Authorization"):
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    return headers


def write_signed_lua(script: Path, body_file: Path, headers: dict[str, str]) -> Path:
    """loadgen's POST script plus the signed headers."""
    loadgen.write_lua(script, body_file)
    lines = [f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in headers.items()]
    with script.open("a") as f:
        f.write("-- a SigV4 signature replayed (benchmarks/hosting/run.py)\n")
        f.write("\n".join(lines) + "\n")
    return script


_METRIC = re.compile(r"^(pier_[a-z_]+?)(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", re.MULTILINE)


def instance_counters(port: int) -> dict[str, float]:
    """The instance's Prometheus samples (GET /metrics), labels summed up."""
    answer = procs.http_get(port, "/metrics", timeout_s=5.0)
    sums: dict[str, float] = {}
    if answer and answer[0] == 200:
        for name, value in _METRIC.findall(answer[1].decode()):
            sums[name] = sums.get(name, 0.0) + float(value)
    return sums


def _per(before: dict[str, float], after: dict[str, float], num: str, den: str) -> float | None:
    d_den = after.get(den, 0.0) - before.get(den, 0.0)
    return (after.get(num, 0.0) - before.get(num, 0.0)) / d_den if d_den else None
