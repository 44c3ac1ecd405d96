"""What the container benchmarks share: the model, the engine, commands timed, readiness.

The model is the quickstart's champion (pier.demo.quickstart: RandomForestRegressor(n_estimators=50,
max_depth=6, random_state=0) on the diabetes training split), saved as an MLflow model
directory with the same signature, input example and serialization as `quickstart.train`
logs it. A "new model version" is the same estimator with another random_state: same
environment, new weights.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent
PIER = BIN / "pier"
MLFLOW = BIN / "mlflow"
HOST = "127.0.0.1"
BENCH_LABEL = "org.pier.bench"  # on the benchmark's base image, so on every image built on it
BENCH_PREFIX = "pier-bench-"


def say(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------------- the model
def train_model(out_dir: Path, random_state: int = 0) -> Path:
    """The quickstart's champion, saved to `out_dir` (replaced if it exists)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from pier.demo.quickstart import CHAMPION, Candidate, load_data

    data = load_data()
    params = {**CHAMPION.params, "random_state": random_state}
    model = Candidate(CHAMPION.alias, CHAMPION.estimator, params).build()
    model.fit(data.X_train, data.y_train)
    shutil.rmtree(out_dir, ignore_errors=True)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            model,
            str(out_dir),
            signature=infer_signature(data.X_train, model.predict(data.X_train)),
            input_example=data.X_train.head(2),
            serialization_format="cloudpickle",
        )
    return out_dir


def one_row_body(model_dir: Path) -> bytes:
    """A 1-row dataframe_split request from the model's input example."""
    example = json.loads((model_dir / "serving_input_example.json").read_text())
    split = example["dataframe_split"]
    return json.dumps({"dataframe_split": {**split, "data": split["data"][:1]}}).encode()


# ------------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class Timed:
    seconds: float
    code: int
    output: str  # stdout and stderr, interleaved

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output.strip().splitlines()[-lines:])


def timed(cmd: list[str], env: dict[str, str] | None = None, timeout_s: float = 1800) -> Timed:
    """Run `cmd` to its end; wall seconds, exit code and output (127 when it is missing)."""
    say("$ " + " ".join(cmd))
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=timeout_s, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except FileNotFoundError as exc:
        return Timed(0.0, 127, str(exc))
    except subprocess.TimeoutExpired as exc:
        out = exc.output if isinstance(exc.output, str) else ""
        return Timed(time.perf_counter() - t0, -9, out + f"\n(timed out after {timeout_s} s)")
    return Timed(time.perf_counter() - t0, done.returncode, done.stdout)


def clean_env(**extra: str) -> dict[str, str]:
    """This shell's environment without pier's and AWS's settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIER_", "AWS_"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env.update(extra)
    return env


def pier_has(command: str) -> str | None:
    """None when `pier COMMAND --help` works, else why not (this branch lacks it)."""
    done = timed([str(PIER), *command.split(), "--help"], clean_env(), timeout_s=120)
    if done.code == 0:
        return None
    return f"`pier {command}` is not available in this checkout: {done.tail(3)}"


# ------------------------------------------------------------------------------ readiness
def ping(port: int, timeout_s: float = 0.5) -> int | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def wait_ping(port: int, t0: float, timeout_s: float, alive: Any = None) -> float:
    """Seconds from `t0` (perf_counter) to the first /ping 200; `alive()` False aborts."""
    while time.perf_counter() - t0 < timeout_s:
        if ping(port) == 200:
            return time.perf_counter() - t0
        if alive is not None and not alive():
            raise RuntimeError("the server exited before answering /ping")
        time.sleep(0.01)
    raise RuntimeError(f"/ping did not answer 200 within {timeout_s:.0f} s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------- docker
def docker() -> Any:
    from pier.hosting import docker_engine

    return docker_engine.connect()


def image_size(client: Any, tag: str) -> int | None:
    from docker.errors import ImageNotFound

    with contextlib.suppress(ImageNotFound):
        return int(client.images.get(tag).attrs["Size"])
    return None


def bench_base(client: Any, base: str) -> str:
    """`base` plus a label, tagged pier-bench-base: images pier builds on it carry the label,
    so the benchmark can remove exactly its own images (and nobody else's) for a cold build."""
    import io

    tag = f"{BENCH_PREFIX}base:latest"
    dockerfile = f"FROM {base}\nLABEL {BENCH_LABEL}=containers\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    return tag


def remove_bench_images(client: Any, keep: tuple[str, ...] = ()) -> list[str]:
    """Remove the images built on the benchmark's base (not the base itself, not `keep`)."""
    removed = []
    base = client.images.get(f"{BENCH_PREFIX}base:latest").id
    for image in client.images.list(filters={"label": f"{BENCH_LABEL}=containers"}):
        if image.id == base or any(t in keep for t in image.tags):
            continue
        with contextlib.suppress(Exception):
            client.images.remove(image.id, force=True)
            removed.append(", ".join(image.tags) or image.short_id)
    return removed


def mb(size: int | None) -> str:
    return "–" if size is None else f"{size / 1e6:,.0f} MB"
