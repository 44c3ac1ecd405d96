"""What access control adds to a runtime request, measured in-process, side by side.

Per request, the platform's front door (pier.platform.api.serve) now does, after SigV4:
`api.operation(request)`, `caller.may(operation)` (one set lookup) and the audit trail's test
`operation in STATE_CHANGING` (one more). This times, on the same signed InvokeEndpoint request
(botocore's SigV4), alternating rounds of

    sigv4     the authentication every request already paid (verify, the key found in a dict)
    +access   the same, plus the three steps above (what serve runs now)

    access    the three steps alone

and prints medians in µs per request and their ratio. In-process, without HTTP, so that the
few hundred nanoseconds are not lost in the noise of a loaded machine.

    .venv/bin/python benchmarks/hosting/access_check.py [--rounds 7] [--n 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pier.contract.asgi import request_headers
from pier.platform.access import STATE_CHANGING, principal
from pier.platform.api import Request, sigv4
from pier.platform.runtime_api import RuntimeApi
from pier.router.invoke import Router
from pier.router.table import RoutingTable

ACCOUNT = "000000000000"
PATH = "/endpoints/bench/invocations"


def signed_request() -> Request:
    body = b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}'
    aws = AWSRequest("POST", "http://127.0.0.1:7437" + PATH, data=body,
                     headers={"Content-Type": "application/json"})  # fmt: skip
    SigV4Auth(Credentials("AKPRBENCH", "bench-secret"), "sagemaker", "us-east-1").add_auth(aws)
    headers = [(k.lower().encode(), v.encode()) for k, v in aws.headers.items()]
    headers.append((b"host", b"127.0.0.1:7437"))
    scope = {"type": "http", "method": "POST", "path": PATH, "raw_path": PATH.encode(),
             "query_string": b"", "headers": headers}  # fmt: skip
    return Request(scope, request_headers(scope), body, 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    keys = {"AKPRBENCH": principal("AKPRBENCH", "bench-secret", "bench", "invoker", ACCOUNT)}
    authenticate = sigv4(keys.get)
    api = RuntimeApi(Router(RoutingTable(), ACCOUNT), None)
    request = signed_request()

    def plain() -> None:
        authenticate(request, "sagemaker")

    def with_access() -> None:
        caller = authenticate(request, "sagemaker")
        operation = api.operation(request)
        if operation is not None and not caller.may(operation):
            raise AssertionError("denied")
        if operation in STATE_CHANGING:
            raise AssertionError("an invocation is not audited")

    caller = keys["AKPRBENCH"]

    def access_alone() -> None:
        operation = api.operation(request)
        if operation is not None and not caller.may(operation):
            raise AssertionError("denied")
        if operation in STATE_CHANGING:
            raise AssertionError("an invocation is not audited")

    timings: dict[str, list[float]] = {"sigv4": [], "+access": [], "access": []}
    for _ in range(args.rounds):
        for name, fn in (("sigv4", plain), ("+access", with_access), ("access", access_alone)):
            start = time.perf_counter()
            for _ in range(args.n):
                fn()
            timings[name].append((time.perf_counter() - start) / args.n * 1e6)
    plain_us = statistics.median(timings["sigv4"])
    access_us = statistics.median(timings["+access"])
    print(f"sigv4 only        {plain_us:7.2f} µs/request (median of {args.rounds} rounds)")
    print(f"sigv4 + access    {access_us:7.2f} µs/request")
    print(f"added             {access_us - plain_us:+7.2f} µs ({access_us / plain_us:.3f}×)")
    alone = statistics.median(timings["access"])
    print(f"access steps alone {alone:6.3f} µs/request ({alone / plain_us:.1%} of sigv4)")


if __name__ == "__main__":
    main()
