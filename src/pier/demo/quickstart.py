"""The quickstart flow as plain functions: train, register, deploy, invoke.

`pier quickstart` runs them in order (`run`); examples/quickstart.ipynb shows the same flow
with the MLflow and boto3 calls written out, and may import the helpers here. Each function
takes what it talks to explicitly (a tracking URI, boto3 clients), so nothing depends on who
started the platform.

Re-running is safe: training registers new versions and moves the aliases; `deploy` creates
the endpoint the first time and updates it (blue/green) afterwards, with a new endpoint config
each run. Models are named after the registry version they serve, so a version is one Model.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import secrets
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pier.errors import PierError

MODEL_NAME = "diabetes"
ENDPOINT_NAME = "diabetes"
EXPERIMENT_NAME = "diabetes"
INSTANCE_TYPE = "ml.m5.large"  # validated, not simulated: every instance is a local process
SETTLED = ("InService", "Failed")


class QuickstartError(PierError):
    code = "QuickstartFailed"


# --- data and training ----------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """sklearn's bundled diabetes data, split once so both candidates see the same rows."""

    X_train: Any  # pandas DataFrames / Series
    X_test: Any
    y_train: Any
    y_test: Any


def load_data(test_size: float = 0.2, seed: int = 0) -> Dataset:
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=seed
    )
    return Dataset(X_train, X_test, y_train, y_test)


@dataclass(frozen=True)
class Candidate:
    """A model to train: the alias it is registered under and its estimator's parameters."""

    alias: str
    estimator: str  # "random_forest" | "gradient_boosting"
    params: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

        kinds = {
            "random_forest": RandomForestRegressor,
            "gradient_boosting": GradientBoostingRegressor,
        }
        if self.estimator not in kinds:
            raise QuickstartError(f"unknown estimator {self.estimator!r}; one of {sorted(kinds)}")
        return kinds[self.estimator](**self.params)


CHAMPION = Candidate(
    "champion", "random_forest",
    {"n_estimators": 50, "max_depth": 6, "random_state": 0, "n_jobs": 1},
)  # fmt: skip
CHALLENGER = Candidate(
    "challenger", "gradient_boosting",
    {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.05, "random_state": 0},
)  # fmt: skip


@dataclass(frozen=True)
class TrainedModel:
    run_id: str
    experiment_id: str
    model_uri: str  # the logged model (models:/m-...), what `register` registers
    metrics: dict[str, float]


def evaluate(model: Any, X: Any, y: Any) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    predicted = model.predict(X)
    return {
        "rmse": float(mean_squared_error(y, predicted) ** 0.5),
        "r2": float(r2_score(y, predicted)),
        "mae": float(mean_absolute_error(y, predicted)),
    }


def train(
    tracking_uri: str,
    data: Dataset,
    candidate: Candidate,
    experiment: str = EXPERIMENT_NAME,
) -> TrainedModel:
    """Fit the candidate, log its parameters, metrics (rmse, r2, mae on the held-out rows) and
    the model with its signature and an input example, in one MLflow run."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    model = candidate.build().fit(data.X_train, data.y_train)
    metrics = evaluate(model, data.X_test, data.y_test)
    with mlflow.start_run(run_name=f"{candidate.alias}-{candidate.estimator}") as run:
        mlflow.log_params({"estimator": candidate.estimator, **candidate.params})
        mlflow.log_metrics(metrics)
        log_training_data(data, tracking_uri, run.info.artifact_uri)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(data.X_train, model.predict(data.X_train)),
            input_example=data.X_train.head(2),
            serialization_format="cloudpickle",
        )
    return TrainedModel(run.info.run_id, run.info.experiment_id, str(info.model_uri), metrics)


def log_training_data(data: Dataset, tracking_uri: str, artifact_uri: str) -> None:
    """The training rows as an artefact of the run (data/train.parquet) and as the run's
    training dataset input pointing at it: `pier monitor baseline` builds the drift baseline
    from it, and the MLflow UI shows what the model learnt from. MLflow resolves no
    `mlflow-artifacts:` dataset source, so a proxied artefact is named by its HTTP URL."""
    import tempfile

    import mlflow
    import mlflow.data

    frame = data.X_train.assign(target=data.y_train)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.parquet"
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="data")
    source = f"{artifact_uri}/data/train.parquet"
    if source.startswith("mlflow-artifacts:/") and tracking_uri.startswith("http"):
        proxied = source.removeprefix("mlflow-artifacts:").lstrip("/")
        source = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/{proxied}"
    dataset = mlflow.data.from_pandas(frame, source=source, name="diabetes-train", targets="target")
    mlflow.log_input(dataset, context="training")


def register(tracking_uri: str, model_uri: str, alias: str, name: str = MODEL_NAME) -> str:
    """Register the logged model as the next version of `name` and point `alias` at it.
    Returns the new version."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    version = str(mlflow.register_model(model_uri, name).version)
    mlflow.MlflowClient(tracking_uri).set_registered_model_alias(name, alias, version)
    return version


# --- deployment (the SageMaker API) ------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A production variant serving one registry version."""

    name: str  # the VariantName, e.g. "champion"
    version: str
    weight: float
    registered_model: str = MODEL_NAME

    @property
    def model_data_url(self) -> str:
        return f"models:/{self.registered_model}/{self.version}"

    @property
    def model_name(self) -> str:
        """One SageMaker Model per registry version: a version never changes, so neither does
        the Model, and a re-run reuses it."""
        return f"{self.registered_model}-{self.name}-v{self.version}"


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _not_found(exc: Exception) -> bool:
    return _error_code(exc) == "ValidationException" and "Could not find" in str(exc)


def ensure_model(sm: Any, variant: Variant) -> None:
    """CreateModel for the variant's version; an existing Model of that name is reused if it
    serves the same URI."""
    try:
        existing = sm.describe_model(ModelName=variant.model_name)
    except Exception as exc:
        if not _not_found(exc):
            raise
        sm.create_model(
            ModelName=variant.model_name,
            PrimaryContainer={"ModelDataUrl": variant.model_data_url},
        )
        return
    url = existing.get("PrimaryContainer", {}).get("ModelDataUrl")
    if url != variant.model_data_url:
        raise QuickstartError(
            f"model {variant.model_name} already exists and serves {url}, not "
            f"{variant.model_data_url}; delete it (aws sagemaker delete-model) or rename yours"
        )


def create_config(
    sm: Any, endpoint: str, variants: Sequence[Variant], capture: dict[str, Any] | None = None
) -> str:
    """A new EndpointConfig with the variants (and `capture`, a DataCaptureConfig); its name
    is unique per call."""
    name = f"{endpoint}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    sm.create_endpoint_config(
        **({"DataCaptureConfig": capture} if capture else {}),
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": v.name,
                "ModelName": v.model_name,
                "InitialInstanceCount": 1,
                "InstanceType": INSTANCE_TYPE,
                "InitialVariantWeight": v.weight,
            }
            for v in variants
        ],
    )
    return name


def capture_of(sm: Any, endpoint: dict[str, Any] | None) -> dict[str, Any] | None:
    """The DataCaptureConfig of the endpoint's current config (a user may have added one):
    re-running the quickstart keeps it."""
    if endpoint is None:
        return None
    try:
        config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    except Exception as exc:
        if _not_found(exc):
            return None
        raise
    capture: dict[str, Any] | None = config.get("DataCaptureConfig")
    return capture


def endpoint_status(sm: Any, endpoint: str) -> dict[str, Any] | None:
    """DescribeEndpoint, or None if there is no such endpoint."""
    try:
        return dict(sm.describe_endpoint(EndpointName=endpoint))
    except Exception as exc:
        if _not_found(exc):
            return None
        raise


def wait_for(
    sm: Any,
    endpoint: str,
    until: Callable[[dict[str, Any] | None], bool],
    on_status: Callable[[str], None] | None = None,
    timeout: float = 600.0,
) -> dict[str, Any] | None:
    """Poll DescribeEndpoint until `until(description)`; report each status change."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        described = endpoint_status(sm, endpoint)
        status = described["EndpointStatus"] if described else "Deleted"
        if on_status is not None and status != last:
            on_status(status)
        last = status
        if until(described):
            return described
        if time.monotonic() > deadline:
            raise QuickstartError(f"endpoint {endpoint} still {status} after {timeout:.0f} s")
        time.sleep(0.5)


def deploy(
    sm: Any,
    variants: Sequence[Variant],
    endpoint: str = ENDPOINT_NAME,
    on_status: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Put `variants` behind `endpoint`: CreateEndpoint the first time, UpdateEndpoint
    (blue/green: the old instances serve until the new ones are healthy) afterwards. Waits for
    InService and returns DescribeEndpoint; a failure raises with the platform's reason."""
    for v in variants:
        ensure_model(sm, v)

    def settled(d: dict[str, Any] | None) -> bool:
        return d is None or d["EndpointStatus"] in SETTLED

    current = wait_for(sm, endpoint, settled, on_status)
    config = create_config(sm, endpoint, variants, capture_of(sm, current))
    if current is not None and current["EndpointStatus"] == "Failed":
        # SageMaker cannot update a failed endpoint: replace it.
        sm.delete_endpoint(EndpointName=endpoint)
        wait_for(sm, endpoint, lambda d: d is None, on_status)
        current = None
    if current is None:
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    else:
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    done = wait_for(sm, endpoint, settled, on_status)
    if done is None:
        raise QuickstartError(f"endpoint {endpoint} was deleted while it was being deployed")
    reason = done.get("FailureReason") or "no reason given"
    if done["EndpointStatus"] != "InService":
        raise QuickstartError(f"endpoint {endpoint} is {done['EndpointStatus']}: {reason}")
    if done["EndpointConfigName"] != config:  # a failed update keeps the previous config
        raise QuickstartError(
            f"endpoint {endpoint} stays on {done['EndpointConfigName']}; "
            f"the update to {config} failed: {reason}"
        )
    return done


# --- invocation (the runtime API) --------------------------------------------------------------


def request_body(X: Any) -> str:
    """MLflow's dataframe_split JSON for the rows of a DataFrame, every digit kept (pandas'
    to_json rounds to 10 decimals: a two-valued feature would then drift from its baseline)."""
    split = {"columns": [str(c) for c in X.columns], "data": X.to_numpy().tolist()}
    return json.dumps({"dataframe_split": split})


@dataclass(frozen=True)
class Answer:
    variant: str
    predictions: list[float]


def invoke(
    runtime: Any, body: str, endpoint: str = ENDPOINT_NAME, variant: str | None = None
) -> Answer:
    """InvokeEndpoint: weighted, or the given variant (TargetVariant)."""
    extra = {"TargetVariant": variant} if variant else {}
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint, Body=body, ContentType="application/json", **extra
    )
    predictions = json.loads(answer["Body"].read())["predictions"]
    return Answer(str(answer["InvokedProductionVariant"]), [float(p) for p in predictions])


def traffic_split(
    runtime: Any,
    body: str,
    calls: int = 50,
    endpoint: str = ENDPOINT_NAME,
    on_call: Callable[[Answer], None] | None = None,
) -> Counter[str]:
    """`calls` weighted invocations; how many each variant answered."""
    counts: Counter[str] = Counter()
    for _ in range(calls):
        answer = invoke(runtime, body, endpoint)
        counts[answer.variant] += 1
        if on_call is not None:
            on_call(answer)
    return counts


# --- the whole flow, as `pier quickstart` shows it ---------------------------------------------


@dataclass(frozen=True)
class Platform:
    """What the flow talks to: the registry, the two APIs, and how to run the CLI."""

    tracking_uri: str
    pier_url: str
    sm: Any  # boto3 "sagemaker" client
    runtime: Any  # boto3 "sagemaker-runtime" client
    pier_command: Sequence[str]  # how to run `pier ...`, as shown to the user
    pier_options: Sequence[str] = ()  # e.g. ("--home", DIR), appended to `pier invoke`
    workdir: Path = Path(".")  # where the request body is written for `pier invoke`


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow prints run links and registration notes straight to stdout/stderr, and logs a
    pickle warning: keep them out of the progress display (the flow prints what matters)."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


@contextmanager
def _step(console: Console, text: str) -> Iterator[Callable[[str], None]]:
    """A spinner with the elapsed time while the step runs; a ✓ line when it is done. Yields
    a function that changes the step's text (e.g. the endpoint's status)."""
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,  # a pipe: ✓ lines only
    )  # fmt: skip
    started = time.perf_counter()
    with progress:
        task = progress.add_task(text)
        yield lambda detail: progress.update(task, description=f"{text} [dim]{detail}[/dim]")
    console.print(f"[green]✓[/green] {text} [dim]({time.perf_counter() - started:.1f} s)[/dim]")


def _fmt(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def run(platform: Platform, console: Console, calls: int = 50) -> dict[str, Any]:
    """Train two models, register them, deploy both behind one endpoint 90/10, invoke it.
    Returns a summary (versions, config, predictions, split) for callers and tests."""
    # Pin the console to today's stdout: MLflow's own prints are redirected while it works.
    console.file = console.file
    with _step(console, "Loading sklearn's diabetes data"):
        data = load_data()
    versions: dict[str, str] = {}
    for candidate in (CHAMPION, CHALLENGER):
        training = f"Training the {candidate.alias} ({candidate.estimator})"
        with _step(console, training), _quiet_mlflow():
            trained = train(platform.tracking_uri, data, candidate)
        metrics = "  ".join(f"{k} {v:.2f}" for k, v in trained.metrics.items())
        console.print(f"    test set: {metrics}")
        console.print(
            f"    run: {platform.tracking_uri}/#/experiments/{trained.experiment_id}"
            f"/runs/{trained.run_id}",
            highlight=False,
        )
        with _step(console, f"Registering it as {MODEL_NAME}@{candidate.alias}"), _quiet_mlflow():
            versions[candidate.alias] = register(
                platform.tracking_uri, trained.model_uri, candidate.alias
            )
        console.print(f"    {MODEL_NAME} version {versions[candidate.alias]} is @{candidate.alias}")

    variants = [
        Variant(CHAMPION.alias, versions[CHAMPION.alias], 0.9),
        Variant(CHALLENGER.alias, versions[CHALLENGER.alias], 0.1),
    ]
    existed = endpoint_status(platform.sm, ENDPOINT_NAME) is not None
    verb = "Updating (blue/green)" if existed else "Creating"
    with _step(console, f"{verb} endpoint {ENDPOINT_NAME}: champion 90 %, challenger 10 %") as show:
        described = deploy(platform.sm, variants, on_status=show)
    for v in described["ProductionVariants"]:
        console.print(
            f"    variant {v['VariantName']}: weight {v['CurrentWeight']:g}, "
            f"{v['CurrentInstanceCount']} instance(s)",
            highlight=False,
        )
    console.print(f"    endpoint config: {described['EndpointConfigName']}", highlight=False)

    rows = data.X_test.head(3)
    body = request_body(rows)
    table = Table(title=f"Predictions for {len(rows)} held-out patients (boto3 invoke_endpoint)")
    table.add_column("asked for")
    table.add_column("answered by")
    table.add_column("predictions")
    answers: dict[str, Answer] = {}
    for v in variants:
        answers[v.name] = invoke(platform.runtime, body, variant=v.name)
        table.add_row(
            f"TargetVariant={v.name}", answers[v.name].variant, _fmt(answers[v.name].predictions)
        )
    console.print(table)
    console.print(f"    actual: {_fmt([float(y) for y in data.y_test.head(3)])}")

    progress = Progress(
        TextColumn("Weighted calls"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.description}"), console=console, transient=True,
        disable=not console.is_terminal,
    )  # fmt: skip
    with progress:
        task = progress.add_task("", total=calls)
        split = traffic_split(
            platform.runtime, body, calls,
            on_call=lambda a: progress.update(task, advance=1, description=a.variant),
        )  # fmt: skip
    shares = ", ".join(f"{name} {split[name]}" for name in (v.name for v in variants))
    console.print(f"[green]✓[/green] {calls} weighted calls answered by: {shares}")

    platform.workdir.mkdir(parents=True, exist_ok=True)
    body_file = platform.workdir / "request.json"
    body_file.write_text(body)
    cli = [*platform.pier_command, "invoke", ENDPOINT_NAME, "--body", f"@{body_file}"]
    cli += ["--variant", CHALLENGER.alias, *platform.pier_options]
    console.print(f"\n$ {shlex.join(cli)}", markup=False, highlight=False)
    done = subprocess.run(cli, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise QuickstartError(
            f"`pier invoke` exited with {done.returncode}: "
            + (done.stderr.strip() or done.stdout.strip())
        )
    console.print(done.stdout.rstrip(), markup=False, highlight=False)
    console.print(done.stderr.rstrip(), markup=False, highlight=False)  # `variant: ...`

    console.print("\n[bold]Open[/bold]")
    console.print(f"  MLflow UI (runs, registry): {platform.tracking_uri}/#/models/{MODEL_NAME}")
    console.print(f"  pier (APIs and links):      {platform.pier_url}")
    console.print(
        f"  pier console:               {platform.pier_url}/console/endpoints/{ENDPOINT_NAME}"
    )
    return {
        "versions": versions,
        "config": described["EndpointConfigName"],
        "answers": answers,
        "split": dict(split),
    }
