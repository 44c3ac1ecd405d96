"""The main job of `make demo`: train the diabetes model, serve it, invoke it, stop the server.

python examples/diabetes_demo.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from train_diabetes import train

console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None, help="where the model and logs go")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pier-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = workdir / "diabetes-model"
    log_file = workdir / "serve.log"

    with console.status("Training RandomForestRegressor on sklearn's diabetes data..."):
        if model_dir.exists():
            import shutil

            shutil.rmtree(model_dir)
        train(model_dir)
    console.print(f"[green]✓[/green] model saved to {model_dir}")

    port = free_port()
    pier = Path(sys.executable).with_name("pier")
    cmd = [str(pier), "serve", "--model-uri", str(model_dir), "--port", str(port)]
    cmd += ["--log-file", str(log_file)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with console.status(f"Starting `pier serve` on {url} (log: {log_file})..."):
            while True:
                if proc.poll() is not None:
                    console.print(
                        f"[red]pier serve exited with {proc.returncode}[/red]; see {log_file}"
                    )
                    return 1
                try:
                    if httpx.get(url + "/ping", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - started > 120:
                    console.print(f"[red]pier serve did not become healthy[/red]; see {log_file}")
                    return 1
                time.sleep(0.02)
        console.print(
            f"[green]✓[/green] pier serve healthy in {time.perf_counter() - started:.2f} s"
            f" (log: {log_file})"
        )
        body = (model_dir / "serving_input_example.json").read_bytes()
        response = httpx.post(
            url + "/invocations", content=body, headers={"Content-Type": "application/json"}
        )
        response.raise_for_status()
        predictions = response.json()["predictions"]
        table = Table(title="POST /invocations (the model's input example)")
        table.add_column("row")
        table.add_column("predicted disease progression", justify="right")
        for i, value in enumerate(predictions):
            table.add_row(str(i), f"{value:.2f}")
        console.print(table)
        console.print("request body:", json.loads(body)["dataframe_split"]["columns"], "...")
        console.print(
            f"Try it yourself: [bold]{pier.name} serve --model-uri {model_dir}[/bold] then\n"
            f"  curl -s -H 'Content-Type: application/json' --data @{model_dir}/"
            "serving_input_example.json http://127.0.0.1:8080/invocations"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    console.print("[green]✓[/green] server stopped")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    sys.exit(main())
