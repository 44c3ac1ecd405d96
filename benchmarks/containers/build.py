"""(1) Images: `pier build` against `mlflow models build-docker`, size and build time.

pier, on the benchmark's base (the debootstrap base plus a label):
- cold: no image built on that base yet and a fresh pier home (no wheelhouse, no base probe);
- warm: the same model again (every layer cached);
- new version: a model trained with another random_state, same environment (target: ≤ 10 s,
  only the model layer rebuilt).
MLflow's build pulls its base image (python:<version>-slim) from Docker Hub: where no registry
answers it cannot run, and the reason is printed with MLflow's published sizes instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from common import (
    BENCH_PREFIX,
    MLFLOW,
    PIER,
    bench_base,
    clean_env,
    docker,
    image_size,
    mb,
    pier_has,
    remove_bench_images,
    say,
    timed,
    train_model,
)

PIER_TAG = f"{BENCH_PREFIX}diabetes"
MLFLOW_TAG = f"{BENCH_PREFIX}mlflow-diabetes"
# What MLflow says its images weigh (no registry here to build one):
MLFLOW_PUBLISHED = [
    {
        "size_bytes": 1_000_000_000,
        "what": "MLflow ≥ 2.10 (python:slim base, no Java), a small scikit-learn model: "
        "'less than 1GB'",
        "source": "https://github.com/mlflow/mlflow/issues/2426 (B-Step62, 2024-02-01; PR #10954)",
    },
    {
        "size_bytes": 3_700_000_000,
        "what": "MLflow < 2.10 (ubuntu base, Java, virtualenv), a scikit-learn model: '> 3.7GB'",
        "source": "https://github.com/mlflow/mlflow/pull/10954",
    },
]


_REASON = re.compile(
    r"^(Step \d+/\d+ : FROM .*|.*(?:dial tcp|pull access|manifest|denied|Error response).*)$", re.M
)


def why_not(output: str) -> str:
    """The lines of a failed docker build that say why: its FROM and the registry's error."""
    return "\n".join(dict.fromkeys(m.group(1).strip() for m in _REASON.finditer(output)))


def pier_build(model: Path, tag: str, base: str, home: Path) -> dict[str, Any]:
    done = timed(
        [str(PIER), "build", str(model), "-t", tag, "--base-image", base],
        clean_env(PIER_HOME=str(home)),
    )
    if done.code != 0:
        raise RuntimeError(f"pier build failed ({done.code}):\n{done.tail()}")
    size = image_size(docker(), tag)
    say(f"  pier build {tag}: {done.seconds:.1f} s, {mb(size)}")
    return {"seconds": round(done.seconds, 2), "size_bytes": size, "tag": tag}


def mlflow_build(model: Path, timeout_s: float) -> dict[str, Any]:
    cold = timed(
        [str(MLFLOW), "models", "build-docker", "-m", str(model), "-n", MLFLOW_TAG],
        clean_env(),
        timeout_s=timeout_s,
    )
    if cold.code != 0:
        reason = why_not(cold.output) or cold.tail(6)
        say(f"  mlflow models build-docker cannot run here ({cold.code}):\n{reason}")
        return {"ran": False, "reason": reason, "published": MLFLOW_PUBLISHED}
    client = docker()
    size = image_size(client, MLFLOW_TAG)
    warm = timed(
        [str(MLFLOW), "models", "build-docker", "-m", str(model), "-n", MLFLOW_TAG],
        clean_env(),
        timeout_s=timeout_s,
    )
    say(f"  mlflow build-docker: cold {cold.seconds:.1f} s, warm {warm.seconds:.1f} s, {mb(size)}")
    return {
        "ran": True,
        "cold_s": round(cold.seconds, 2),
        "warm_s": round(warm.seconds, 2),
        "size_bytes": size,
    }


def measure(work: Path, base_image: str, mlflow_timeout_s: float) -> dict[str, Any]:
    missing = pier_has("build")
    say("== (1) image: pier build vs mlflow models build-docker")
    model_1 = train_model(work / "model-v1", random_state=0)
    model_2 = train_model(work / "model-v2", random_state=1)
    out: dict[str, Any] = {"mlflow": mlflow_build(model_1, mlflow_timeout_s)}
    if missing:
        say("  " + missing)
        out["pier"] = {"ran": False, "reason": missing}
        return out
    client = docker()
    base = bench_base(client, base_image)
    removed = remove_bench_images(client)
    if removed:
        say(f"  cold cache: removed {len(removed)} image(s) built on {base} earlier")
    home = work / "build-home"
    cold = pier_build(model_1, f"{PIER_TAG}:1", base, home)
    warm = pier_build(model_1, f"{PIER_TAG}:1", base, home)
    version = pier_build(model_2, f"{PIER_TAG}:2", base, home)
    out["pier"] = {"ran": True, "base": base_image, "cold": cold, "warm": warm,
                   "new_version": version}  # fmt: skip
    mlflow_size = out["mlflow"].get("size_bytes") or MLFLOW_PUBLISHED[0]["size_bytes"]
    if cold["size_bytes"]:
        out["size_ratio_vs_mlflow"] = round(cold["size_bytes"] / mlflow_size, 3)
    return out
