"""(3) Container cold start: `docker run IMAGE serve` → the first /ping 200 (target ≤ 2 s).

The image `pier build` made in (1) (built here if (1) did not run), and the R example's image
(examples/byoc-r, built on the same base) for comparison. Each round starts a new container
on a port chosen beforehand, polls /ping every 10 ms from the run call on, and removes it.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from common import BENCH_PREFIX, ROOT, docker, free_port, pier_has, say, train_model, wait_ping

R_TAG = f"{BENCH_PREFIX}byoc-r"


def one_start(client: Any, image: str, model_dir: Path | None) -> float:
    port = free_port()
    mounts = {str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"}} if model_dir else {}
    t0 = time.perf_counter()
    container = client.containers.run(
        image, ["serve"], detach=True, ports={"8080/tcp": ("127.0.0.1", port)}, volumes=mounts
    )

    def alive() -> bool:
        container.reload()
        return bool(container.status != "exited")

    try:
        return wait_ping(port, t0, 120.0, alive=alive)
    except RuntimeError as exc:
        raise RuntimeError(
            f"{image}: {exc}; its log ends:\n{container.logs(tail=8).decode()}"
        ) from None
    finally:
        container.remove(force=True)


def train_r(client: Any, work: Path) -> Path:
    """The R example trained on the diabetes training split (target first, no header), as
    SageMaker would: `docker run IMAGE train` with /opt/ml mounted."""
    import numpy as np

    from pier.demo.quickstart import load_data

    data = load_data()
    ml = work / "r-ml"
    channel = ml / "input" / "data" / "training"
    channel.mkdir(parents=True, exist_ok=True)
    rows = np.column_stack([data.y_train.to_numpy(), data.X_train.to_numpy()])
    np.savetxt(channel / "train.csv", rows, delimiter=",", fmt="%.17g")
    client.containers.run(
        R_TAG, ["train"], user=f"{os.getuid()}:{os.getgid()}", remove=True,
        volumes={str(ml): {"bind": "/opt/ml", "mode": "rw"}},
    )  # fmt: skip
    return ml / "model"


def rounds_of(
    client: Any, image: str, rounds: int, model_dir: Path | None = None
) -> dict[str, Any]:
    one_start(client, image, model_dir)  # the first start after a build warms the page cache
    times = [one_start(client, image, model_dir) for _ in range(rounds)]
    median = statistics.median(times)
    say(f"  {image}: median {median:.2f} s ({', '.join(f'{t:.2f}' for t in times)})")
    return {"median_s": round(median, 3), "rounds_s": [round(t, 3) for t in times]}


def measure(work: Path, base_image: str, rounds: int, pier_image: str | None) -> dict[str, Any]:
    say("== (3) cold start: docker run → first /ping 200")
    client = docker()
    out: dict[str, Any] = {}
    if pier_image is None:
        missing = pier_has("build")
        if missing:
            out["pier"] = {"ran": False, "reason": missing}
        else:
            from build import PIER_TAG, pier_build
            from common import bench_base

            model = train_model(work / "model-v1", random_state=0)
            base = bench_base(client, base_image)
            pier_image = pier_build(model, f"{PIER_TAG}:1", base, work / "build-home")["tag"]
    if pier_image is not None:
        try:
            out["pier"] = {
                "ran": True,
                "image": pier_image,
                **rounds_of(client, pier_image, rounds),
            }
        except RuntimeError as exc:
            out["pier"] = {"ran": False, "reason": str(exc)}
    try:
        client.images.build(
            path=str(ROOT / "examples" / "byoc-r"), tag=R_TAG, rm=True,
            buildargs={"BASE_IMAGE": base_image},
        )  # fmt: skip
        model_dir = train_r(client, work)
        out["r_plumber"] = {"ran": True, "image": R_TAG,
                            **rounds_of(client, R_TAG, rounds, model_dir)}  # fmt: skip
    except Exception as exc:  # the R image is a comparison: its failure is reported, not fatal
        out["r_plumber"] = {"ran": False, "reason": f"{type(exc).__name__}: {exc}"}
        say(f"  R example: {exc}")
    return out
