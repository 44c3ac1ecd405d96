"""Containers benchmark: images, environments, cold start, Docker backend throughput.

    .venv/bin/python benchmarks/containers/run.py                     # all four, one run
    .venv/bin/python benchmarks/containers/run.py --only build        # or env, coldstart,
                                                                      #    throughput (repeatable)

Side by side in one run, on the quickstart's diabetes random forest (common.train_model):
(1) `pier build` vs `mlflow models build-docker`: image size, build time cold, warm, and for a
    new model version (build.py);
(2) environment creation, first and cached: `pier serve --env-manager virtualenv` vs
    `mlflow models serve --env-manager virtualenv`, to the first /ping 200 (envs.py);
(3) `docker run IMAGE serve` → first /ping 200, pier's image and the R example's (coldstart.py);
(4) endpoint throughput at c64, `pier up --backend docker` vs the process backend
    (throughput.py).
Targets: image ≤ 1/3 of MLflow's, cached rebuild after a new model version ≤ 10 s, container
cold start ≤ 2 s, Docker backend throughput ≥ 0.9 of the process backend. A measurement that
cannot run here says why and the others go on. Writes benchmarks/containers/results/latest.json
and prints the Markdown table for docs/benchmarks.md. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build  # noqa: E402
import coldstart  # noqa: E402
import envs  # noqa: E402
import throughput  # noqa: E402
from common import ROOT, docker, mb, remove_bench_images, say  # noqa: E402

RESULTS = HERE / "results"
MEASUREMENTS = ("build", "env", "coldstart", "throughput")
TARGETS = {"size_ratio": 1 / 3, "new_version_s": 10.0, "cold_start_s": 2.0, "throughput": 0.9}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--only",
        action="append",
        choices=MEASUREMENTS,
        help="run only this measurement (repeatable; default all four)",
    )
    p.add_argument(
        "--base-image",
        default=os.environ.get("PIER_BASE_IMAGE", "pier-base:bookworm"),
        help="local base image for pier's and the R example's images\n"
        "[$PIER_BASE_IMAGE or pier-base:bookworm]",
    )
    p.add_argument("--rounds", type=int, default=5, help="cold-start and throughput rounds [5]")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run [10]")
    p.add_argument("--connections", type=int, default=64, help="wrk connections [64]")
    p.add_argument(
        "--mlflow-timeout",
        type=float,
        default=900.0,
        help="seconds before giving up on mlflow models build-docker [900]",
    )
    p.add_argument(
        "--keep-images",
        action="store_true",
        help="keep the pier-bench-* images afterwards (default: removed)",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=RESULTS / "run",
        help="models, homes, logs (emptied first) [results/run]",
    )
    p.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="JSON results")
    return p.parse_args(argv)  # fmt: skip


def guarded(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One measurement; its failure is recorded (with the reason) and the others go on."""
    try:
        return run()
    except Exception as exc:  # a benchmark reports what broke and moves on
        say(f"!! {name} failed: {exc}")
        return {"ran": False, "reason": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}  # fmt: skip


def git_head() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return done.stdout.strip()


def table(results: dict[str, Any]) -> str:
    """The Markdown rows for docs/benchmarks.md."""
    rows = ["| measurement | pier | MLflow / other | ratio or target |", "|---|---|---|---|"]
    b = results.get("build")
    if b:
        m = b.get("mlflow", {})
        theirs = (f"{mb(m['size_bytes'])}, cold {m['cold_s']:.0f} s, warm {m['warm_s']:.0f} s"
                  if m.get("ran") else "cannot build here; published: < 1 GB (≥ 2.10), > 3.7 GB "
                  "before")  # fmt: skip
        p = b.get("pier", {})
        if p.get("ran"):
            rows.append(f"| image size | {mb(p['cold']['size_bytes'])} | {theirs} | "
                        f"{b.get('size_ratio_vs_mlflow', '–')} (target ≤ 0.33) |")  # fmt: skip
            rows.append(f"| build: cold / warm | {p['cold']['seconds']:.1f} s / "
                        f"{p['warm']['seconds']:.1f} s | | |")  # fmt: skip
            rows.append(f"| build: new model version, cached | {p['new_version']['seconds']:.1f} s"
                        " | | target ≤ 10 s |")  # fmt: skip
        else:
            rows.append(f"| image | did not run: {p.get('reason', '?')} | {theirs} | |")
    e = results.get("env")
    if e:

        def cell(x: dict[str, Any]) -> str:
            return f"{x['seconds']:.1f} s" if x.get("ran") else "did not run"

        if "pier_first" in e:
            rows.append(f"| environment, first → /ping | {cell(e['pier_first'])} | "
                        f"{cell(e['mlflow_first'])} | |")  # fmt: skip
            rows.append(f"| environment, cached → /ping | {cell(e['pier_cached'])} | "
                        f"{cell(e['mlflow_cached'])} | |")  # fmt: skip
    c = results.get("coldstart")
    if c:
        pier_c = c.get("pier", {})
        r_c = c.get("r_plumber", {})
        mine = f"{pier_c['median_s']:.2f} s" if pier_c.get("ran") else "did not run"
        other = f"R/plumber {r_c['median_s']:.2f} s" if r_c.get("ran") else ""
        rows.append(f"| docker run → first /ping 200 (median) | {mine} | {other} | "
                    "target ≤ 2 s |")  # fmt: skip
    t = results.get("throughput")
    if t and t.get("ran"):
        rows.append(f"| c{t['connections']} rps: docker backend / process backend | "
                    f"{t['docker']['rps']:,.0f} / {t['process']['rps']:,.0f} | | "
                    f"**{t['ratio']}** (target ≥ 0.9) |")  # fmt: skip
    elif t:
        rows.append(f"| throughput | did not run: {t.get('reason', '?')} | | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = args.only or list(MEASUREMENTS)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_head(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "base_image": args.base_image,
    }
    work = args.work
    try:
        if "build" in only:
            results["build"] = guarded(
                "build", lambda: build.measure(work, args.base_image, args.mlflow_timeout)
            )
        if "env" in only:
            results["env"] = guarded("env", lambda: envs.measure(work))
        if "coldstart" in only:
            built = results.get("build", {}).get("pier", {})
            image = built["cold"]["tag"] if built.get("ran") else None
            results["coldstart"] = guarded(
                "coldstart",
                lambda: coldstart.measure(work, args.base_image, args.rounds, image),
            )
        if "throughput" in only:
            results["throughput"] = guarded(
                "throughput",
                lambda: throughput.measure(
                    work, args.rounds, args.duration, args.connections, args.base_image
                ),
            )
    finally:
        if not args.keep_images:
            removed = guarded("cleanup", lambda: {"removed": cleanup()})
            say(f"removed images: {removed}")
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    say(f"\nresults: {args.output}\n")
    say(table(results))
    return 0


def cleanup() -> list[str]:
    """Remove the pier-bench-* images this run made (the base image is never touched)."""
    client = docker()
    removed = []
    with contextlib.suppress(Exception):  # no bench base: nothing was built on it
        removed += remove_bench_images(client)
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith("pier-bench-"):
                try:
                    client.images.remove(tag, force=True)
                    removed.append(tag)
                except Exception:  # still used by a container: leave it, say so
                    say(f"could not remove {tag}")
    return removed


if __name__ == "__main__":
    sys.exit(main())
