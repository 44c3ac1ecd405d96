"""`pier up` in the foreground: store, migrations, backend, reconciler, one HTTP port.

The APIs serve as soon as the state is loaded and the endpoints' routes are published (the
instances a previous platform left running serve on at once); pier's MLflow server joins when
it answers, and instances are launched from then on (they resolve registry models there).

SIGTERM / SIGINT,  # `pier down` or Ctrl-C: stop accepting, drain, stop every instance, exit
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from pier.contract.cloudwatch import Protocol
from pier.control.alarm_service import CloudWatchAlarmService
from pier.control.arns import ArnFactory
from pier.control.experiment_service import ExperimentService
from pier.control.metrics_service import CloudWatchMetricsService
from pier.control.monitoring_service import MonitoringService
from pier.control.reconcile import Reconciler
from pier.control.service import HostingService
from pier.errors import PierError
from pier.hosting.base import Backend
from pier.hosting.dispatch import DispatchBackend
from pier.hosting.docker_backend import DockerBackend
from pier.hosting.housekeeping import sweep
from pier.hosting.image_map import ImageMap
from pier.hosting.model_local import local_model_dir
from pier.hosting.pids import write_pid_file
from pier.hosting.process import ProcessBackend
from pier.monitor.alarms.runner import AlarmRunner
from pier.monitor.capture.capture import Capturer, default_base
from pier.monitor.quality.ground_truth import GroundTruthStore, announce, store_uri
from pier.monitor.schedules.model_baselines import fetch_baseline
from pier.monitor.schedules.scheduler import Scheduler, publish_to
from pier.platform.access import KeyCache, adopt_home_credential
from pier.platform.api import Api, sigv4
from pier.platform.app import Metrics, Ping, PlatformApp
from pier.platform.audit_trail import AuditTrail
from pier.platform.cloudwatch_api import (
    CloudWatchApi,
    alarm_operations,
    cloudwatch_operations,
    metric_operations,
)
from pier.platform.console.app import ConsoleApi, ConsoleLinkApi
from pier.platform.console.calls import ConsoleCalls
from pier.platform.console.sessions import SessionStore
from pier.platform.deployments_api import DeploymentsApi
from pier.platform.front_page import FrontPage
from pier.platform.gateway_api import GatewayApi, GatewaySyncApi
from pier.platform.ground_truth_api import GroundTruthApi
from pier.platform.home import OWNER_ONLY_UMASK, Home
from pier.platform.invoke_protocol import invoke_protocol
from pier.platform.leading import LeaderLoops
from pier.platform.metrics_recorder import MetricsRecorder
from pier.platform.mlflow_server import MlflowServer, default_options, stop_leftover
from pier.platform.models import model_resolver
from pier.platform.monitoring_api import MonitoringApi
from pier.platform.runtime_api import RuntimeApi, capture_pairs, stored_status
from pier.platform.sagemaker_api import SageMakerApi
from pier.router.invoke import Router
from pier.router.metrics import EndpointMetrics, InstanceProcess
from pier.router.table import RoutingTable
from pier.serving.server import bind_socket, drain_on_sigterm_server
from pier.settings import PlatformSettings
from pier.store import db
from pier.store.alarms import AlarmStore
from pier.store.api_keys import ApiKeyStore
from pier.store.audit import AuditStore
from pier.store.leader import Leadership
from pier.store.metrics import MetricStore
from pier.store.users import UserStore

log = logging.getLogger("pier.platform")


class AlreadyRunning(PierError):
    code = "AlreadyRunning"


def _http_error_body(message: str) -> bytes:
    """An HTTP-level 400 (uvicorn's, before any API is chosen) as JSON, AWS's `message` key."""
    return orjson.dumps({"message": message})


def configure_logging(home: Home, level: str) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.handlers.clear()
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(home.log_file)):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(level.upper())
    # One line per health check of every instance would drown the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def image_checker(backend: Backend) -> Callable[[str | None], str | None]:
    """CreateModel's check: None when the backend can run the image, else why it cannot."""
    return backend.cannot_run


def make_backend(settings: PlatformSettings, home: Home) -> Backend:
    """The backend `settings.backend` names (docs/containers.md). `docker` connects to the
    engine now: DockerUnavailable says how to get one."""
    docker = DockerBackend(
        home.root,  # records in home/instances/, like the process backend's
        image_map=settings.image_map,
        base_image=settings.base_image,
        cache_dir=home.root / "cache" / "images",  # shared with `pier build`
    )
    if settings.backend == "docker":
        docker.client  # noqa: B018  # connects, or raises DockerUnavailable
        return docker
    process = ProcessBackend(  # it keeps its records in home/instances/
        home.root,
        env_manager=settings.env_manager,
        env_cache=settings.env_cache or home.root / "envs",
        model_cache=home.model_cache / "mlflow",
    )
    return DispatchBackend(process, docker)


def start_mlflow(settings: PlatformSettings, home: Home) -> MlflowServer | None:
    """Launch pier's own MLflow server, or record the external one; None when not ours."""
    home.mlflow_url_file.unlink(missing_ok=True)
    if settings.mlflow_uri:
        home.mlflow_url_file.write_text(settings.mlflow_uri)
        return None
    if not settings.mlflow:
        return None
    port = settings.mlflow_port or _kept_port(home, settings.host)
    options = default_options(
        home, port, settings.backend_store_uri, settings.artifacts_destination
    )
    server = MlflowServer(home, options)
    server.start()
    return server


def _kept_port(home: Home, host: str) -> int:
    """The port chosen for MLflow the last time one was chosen (clients and instances keep its
    URL across restarts) when it is still free, else a new free one, remembered."""
    kept = home.root / "mlflow.port"
    stop_leftover(home)  # a killed platform's MLflow may hold it still
    try:
        port = int(kept.read_text().strip())
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as MLflow binds it
            s.bind((host, port))
    except (OSError, ValueError):
        port = _free_port(host)
        kept.write_text(str(port))
    return port


def _free_port(host: str) -> int:
    # `mlflow server` has no "port 0, tell me which": ask the kernel for one and hand it over.
    # Another process could take it in between; MLflow then fails to start and says so.
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def housekeeper(settings: PlatformSettings, home: Home) -> Callable[[set[str], set[str]], object]:
    """The reconciler's housekeeping: the home's instance directories and model caches (the
    model data cache, the process backend's downloads, the Docker backend's)."""
    roots = [
        home.model_cache,
        home.model_cache / "mlflow",
        home.root / "cache" / "images" / "models",
    ]

    def run(running: set[str], models: set[str]) -> object:
        return sweep(
            home.instances_dir,
            roots,
            running=running,
            model_paths=models,
            grace_s=settings.housekeeping_grace_seconds,
        )

    return run


def instance_processes(backend: Backend) -> list[InstanceProcess]:
    return [
        InstanceProcess(i.spec.endpoint, i.spec.variant, i.spec.instance_id, i.pid)
        for i in backend.list()
        if i.pid is not None
    ]


def deployed_model(reconciler: Reconciler, home: Home) -> Callable[[str], Path | None]:
    """The local directory of the model an endpoint's main variant (the heaviest weight)
    runs, as its instances loaded it (registry models from the backend's download cache),
    for the gateway's OpenAPI documents; None when no instance runs. Blocking."""

    def model_of(endpoint: str) -> Path | None:
        live = reconciler.variants(endpoint)
        served = [(v.current_weight, v.model_uris[0]) for v in live.values() if v.model_uris]
        if not served:
            return None
        uri = max(served)[1]
        return local_model_dir(uri, home.model_cache / "mlflow") if uri else None

    return model_of


def run(settings: PlatformSettings) -> int:
    """Run the platform until SIGTERM/SIGINT. Raises PierError for a clear one-line failure."""
    # Everything the platform writes lives in the home and is the owner's alone (the state
    # database holds containers' Environment values; captured payloads and logs). Set for this
    # process (and inherited by the instances and MLflow it starts); the Docker backend opens
    # up the model directories it mounts, which a container's non-root user must read.
    os.umask(OWNER_ONLY_UMASK)
    home = Home(settings.home)
    home.prepare()
    configure_logging(home, settings.log_level)
    pid = home.running_pid()
    if pid is not None and pid != os.getpid():
        raise AlreadyRunning(
            f"pier is already running from {home.root} (pid {pid}); `pier down` stops it"
        )
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        raise PierError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}; "
            "choose another port with --port"
        ) from None
    mlflow = start_mlflow(settings, home)  # it starts while the store migrates
    try:
        engine = db.create(settings.resolved_state_url())
        db.migrate(engine)
        credentials = home.credentials()
        assert credentials is not None
        users = UserStore(db.sessions(engine), home.server_key())
        adopt_home_credential(users, credentials)  # the first admin: nothing breaks
    except BaseException:
        if mlflow is not None:
            mlflow.stop()
        raise
    tracking_uri = mlflow.url if mlflow is not None else home.mlflow_url()
    if tracking_uri:
        # Instances (and the registry lookups that pin a model version) resolve models:/ here.
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    write_pid_file(home.pid_file, os.getpid())
    home.url_file.write_text(url)
    log.info("pier platform on %s (home %s, log %s)", url, home.root, home.log_file)
    try:
        import uvloop

        uvloop.run(_serve(settings, home, engine, users, sock, mlflow))
    finally:
        for f in (home.pid_file, home.url_file):
            f.unlink(missing_ok=True)
        engine.dispose()
        if mlflow is not None:
            mlflow.stop()
        home.mlflow_url_file.unlink(missing_ok=True)
    log.info("pier platform stopped")
    return 0


async def _join_mlflow(mlflow: MlflowServer, launches: asyncio.Event, server: Any) -> None:
    """Wait for pier's MLflow server while the APIs serve; then let instances launch. If it
    does not start, the platform stops (as `pier up` did when it waited first) and says why."""
    try:
        await asyncio.to_thread(mlflow.wait_ready)
    except PierError as exc:
        if server.should_exit:
            return  # the platform stops anyway (and stopped MLflow)
        log.error("MLflow did not start: %s; stopping", exc.message)
        server.should_exit = True
        raise
    launches.set()


async def _serve(
    settings: PlatformSettings,
    home: Home,
    engine: Any,
    users: UserStore,
    sock: Any,
    mlflow: MlflowServer | None = None,
) -> None:
    import uvicorn

    sessions = db.sessions(engine)
    table = RoutingTable()
    backend = make_backend(settings, home)
    log.info("instances run on the %s backend", settings.backend)
    launches = asyncio.Event()  # set once MLflow answers (at once without pier's own MLflow)
    if mlflow is None:
        launches.set()
    reconciler = Reconciler(
        sessions,
        backend,
        table,
        model_resolver(home.model_cache, ImageMap(settings.image_map)),
        health_interval_s=settings.health_interval_seconds,
        stop_grace_s=settings.stop_grace_seconds,
        housekeeping=housekeeper(settings, home),
        housekeeping_interval_s=settings.housekeeping_interval_seconds,
        launches=launches,
    )
    service = HostingService(
        sessions,
        ArnFactory(settings.region, settings.account),
        check_image=image_checker(backend),
        live=reconciler,
        notify=reconciler.notify,
        max_instances=settings.max_instances,
    )
    registry = CollectorRegistry(auto_describe=True)
    metrics = EndpointMetrics(registry, table, lambda: instance_processes(backend))
    router = Router(
        table,
        settings.account,
        on_unreachable=reconciler.suspect,
        metrics=metrics,
        bundles=settings.bundle_invocations,
    )

    # Access keys of every user, refreshed when `pier users` changes them; the audit trail.
    keys = KeyCache(users, settings.account)
    trail = AuditTrail(AuditStore(sessions), ArnFactory(settings.region, settings.account))
    capturer = Capturer(default_base(home.root), registry, durable=settings.capture_durable)
    table.on_retired(capturer.metrics.forget)  # a deleted endpoint's series leave /metrics
    router.mirror.record = capture_pairs(capturer)  # both halves of mirrored requests
    labels = GroundTruthStore(store_uri(settings.ground_truth_uri, home.root), home.root)
    announce(home.root, labels)  # where `pier quality` reads them back
    metric_store = MetricStore(sessions)
    recorder = MetricsRecorder(
        metrics,
        table,
        lambda: instance_processes(backend),
        metric_store,
        flush_s=settings.metrics_flush_seconds,
        retention=timedelta(days=settings.metrics_retention_days),
    )
    # CloudWatch's API: one service object per group of operations (metrics; alarms add theirs).
    alarm_store = AlarmStore(sessions)
    alarms = AlarmRunner(  # other parts of pier get transitions with alarms.subscribe(callback)
        alarm_store,
        metric_store,
        account=settings.account,
        region=settings.region,
        interval_s=settings.alarm_evaluation_seconds,
        delay_s=settings.alarm_evaluation_delay_seconds,
    )
    alarms.subscribe(reconciler.on_alarm)  # guarded updates roll back on their alarms
    alarm_service = CloudWatchAlarmService(
        alarm_store, alarms, region=settings.region, account=settings.account
    )
    cloudwatch = cloudwatch_operations(
        metric_operations(CloudWatchMetricsService(metric_store)), alarm_operations(alarm_service)
    )
    # Monitoring schedules: SageMaker's API on the control port; the scheduler runs them and
    # publishes drift metrics (aws/sagemaker/Endpoints/data-metrics) to the metric store.
    scheduler = Scheduler(
        sessions,
        capture_base=default_base(home.root),
        output_base=home.root / "monitoring",
        publish=publish_to(metric_store),
        from_model=fetch_baseline,
        # Analyses in a worker process: invocations keep their latency (docs/monitoring.md).
        processes=settings.monitoring_worker == "process",
    )
    monitoring = MonitoringService(
        sessions,
        ArnFactory(settings.region, settings.account),
        run_now=scheduler.run_now,
        notify=scheduler.notify,
    )
    runtime = RuntimeApi(router, capturer, stored_status(sessions))
    gateway = GatewayApi(  # the public routes, /api/ (docs/gateway.md)
        runtime,
        table,
        ApiKeyStore(sessions),
        home.gateway_secret(),
        deployed_model(reconciler, home),
        flush_s=settings.gateway_flush_seconds,
    )
    # Tried in order, the first that matches serves: the hot runtime path first; CloudWatch's
    # JSON 1.0 (POST / with its X-Amz-Target) before SageMaker's control API on POST /.
    sagemaker = SageMakerApi(
        service, monitoring, ExperimentService(sessions, service.arns, hosting=service)
    )
    # The web console calls the same operation tables in-process (docs/console.md).
    console_sessions = SessionStore(
        ttl_s=settings.console_session_seconds, link_ttl_s=settings.console_link_seconds
    )
    console = ConsoleApi(
        ConsoleCalls(
            sagemaker.operations,
            cloudwatch,
            monitoring,
            runtime,
            backend,
            default_base(home.root),
            state=sessions,
            audit=AuditStore(sessions),
            api_keys=ApiKeyStore(sessions),
        ),
        console_sessions,
        keys.lookup,
        mlflow_url=home.mlflow_url,
        model_cache=home.model_cache / "mlflow",  # the process backend's download cache
        trail=trail,  # console actions are audited and role-checked like API calls
        keys_changed=gateway.sync,  # a key revoked in the console is refused at once
    )
    apis: list[Api] = [
        runtime,
        gateway,
        GatewaySyncApi(gateway),
        CloudWatchApi(Protocol.CBOR, cloudwatch),
        CloudWatchApi(Protocol.JSON, cloudwatch),
        sagemaker,
        GroundTruthApi(labels, service, settings.account),
        MonitoringApi(monitoring),
        ConsoleLinkApi(console_sessions),  # POST /console/links, before the console's pages
        console,
        DeploymentsApi(service),
        Ping(),
        Metrics(registry, settings.metrics_token),
        FrontPage(home.mlflow_url),
    ]
    app = PlatformApp(apis, sigv4(keys.lookup), trail)
    # InvokeEndpoint skips uvicorn's ASGI cycle, through the same front door (serve).
    protocol = invoke_protocol(app, [runtime], _http_error_body)
    await keys.start()
    await trail.start()
    await capturer.start()
    await recorder.start()
    # Platforms sharing a PostgreSQL state database all serve; one leads (pier.store.leader).
    leading = LeaderLoops(
        Leadership(engine),
        [reconciler.start, scheduler.start, alarms.start],
        on_lost=lambda: signal.raise_signal(signal.SIGTERM),  # drain and stop, as `pier down`
    )
    await leading.start()
    await gateway.start()
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=protocol,
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_keep_alive=60,
        # The platform binds loopback and trusts no proxy: the audit trail records the
        # socket's peer, never an X-Forwarded-For a local client wrote (and one middleware
        # fewer on every request).
        proxy_headers=False,
    )
    server = drain_on_sigterm_server(config)
    # Everything built so far lives as long as the process: out of the collector's sight, so
    # full collections (seen at 3-5 % of the platform under load) stop walking it.
    gc.collect()
    gc.freeze()
    joining = None
    if mlflow is not None:  # the APIs serve meanwhile
        joining = asyncio.create_task(_join_mlflow(mlflow, launches, server))
    try:
        await server.serve(sockets=[sock])
        if joining is not None and joining.done():
            joining.result()  # raises why MLflow did not start
    finally:
        if joining is not None and not joining.done():
            # Stopped while MLflow was starting: stop it, which ends the wait in its thread.
            assert mlflow is not None
            await asyncio.to_thread(mlflow.stop)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await joining
        # Requests have drained: so have the copies sent to shadow variants (their answers are
        # captured); then write every captured record before anything else stops.
        await router.mirror.aclose()
        await capturer.aclose()
        await gateway.aclose()  # this period's usage counts
        await scheduler.aclose()  # an execution in progress finishes
        await recorder.aclose()  # every counted request, and the instances' last CPU sample
        await alarms.aclose()  # webhooks in flight get a few seconds
        await trail.aclose()  # every audited call is written
        await keys.aclose()
        log.info("stopping instances")
        await reconciler.stop(stop_instances=True)
        await leading.aclose()  # another platform may lead now
        await router.aclose()
        await asyncio.sleep(0)
