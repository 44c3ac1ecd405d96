"""Model data resolution: pass-through URIs, safe unpacking, caching, https and s3 sources."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import io
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from pier.errors import ValidationException
from pier.hosting import model_data
from pier.hosting.base import InstanceSpec, InstanceState
from pier.hosting.model_data import resolve
from pier.hosting.process import ProcessBackend
from tests.hosting import EXPECTED, PAYLOAD, save_linear_model


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_linear_model(tmp_path_factory.mktemp("model") / "linear")


def model_tar(model: Path, path: Path, arcname: str = "linear") -> Path:
    """SageMaker's model.tar.gz: the model directory (or, with arcname ".", its content)."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(model, arcname=arcname)
    return path


def tar_with(model: Path, path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    """A model archive with one more (hostile) member at its end."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(model, arcname="linear")
        member.size = len(data) if member.isreg() else 0
        tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return path


def tar_of(model: Path, path: Path, members: list[tarfile.TarInfo]) -> Path:
    """A model archive with more (hostile) members at its end, empty files or links."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(model, arcname="linear")
        for m in members:
            tar.addfile(m, io.BytesIO(b"") if m.isreg() else None)
    return path


#: tarfile's data filter exists from Python 3.11.4 on: before, only pier's own way is there to test.
WAYS = ["filters", "by hand"] if hasattr(tarfile, "data_filter") else ["by hand"]


@pytest.fixture(params=WAYS)
def extraction(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of unpacking: tarfile's data filter (Python 3.11.4 and later) and pier's own
    extraction for the Pythons before (forced here, whatever this Python has)."""
    monkeypatch.setattr(model_data, "FILTERS", request.param == "filters")
    return str(request.param)


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------- local sources
@pytest.mark.parametrize(
    "uri", ["models:/churn@champion", "models:/churn/3", "runs:/abc/model", "mlflow-artifacts:/1/m"]
)
def test_mlflow_uris_pass_through(uri: str, tmp_path: Path) -> None:
    assert resolve(uri, tmp_path / "cache") == uri
    assert not (tmp_path / "cache").exists()


def test_directories_pass_through(model: Path, tmp_path: Path) -> None:
    assert resolve(str(model), tmp_path) == str(model)
    assert resolve(model.as_uri(), tmp_path) == str(model)
    assert resolve(f"  {model}\n", tmp_path) == str(model)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "empty"),
        ("/no/such/model.tar.gz", "/no/such/model.tar.gz does not exist"),
        ("file:///no/such/dir", "does not exist"),
        ("file://otherhost/m.tar.gz", "must name a local path"),
        ("gs://bucket/model.tar.gz", "Unsupported model data URI gs://bucket/model.tar.gz"),
        ("http://example.com/model.tar.gz", "plain http:// is accepted only from this machine"),
        ("s3:///model.tar.gz", "names no bucket"),
    ],
)
def test_bad_uris(uri: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationException, match=message):
        resolve(uri, tmp_path)


def test_a_tar_gz_with_a_model_directory_unpacks_once(
    model: Path, tmp_path: Path, extraction: str
) -> None:
    archive = model_tar(model, tmp_path / "model.tar.gz")
    cache = tmp_path / "cache"
    resolved = Path(resolve(str(archive), cache))
    assert resolved.name == "linear"  # the single top-level directory holding MLmodel
    assert (resolved / "MLmodel").is_file()
    assert resolved.parent.parent == cache
    assert resolve(archive.as_uri(), cache) != str(resolved)  # another URI, another key
    (resolved / "marker").touch()
    assert resolve(str(archive), cache) == str(resolved)  # cached: not unpacked again
    assert (resolved / "marker").exists()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no leftovers


def test_a_tar_gz_with_the_model_at_its_top(model: Path, tmp_path: Path, extraction: str) -> None:
    archive = model_tar(model, tmp_path / "model.tar.gz", arcname=".")
    resolved = Path(resolve(str(archive), tmp_path / "cache"))
    assert (resolved / "MLmodel").is_file()
    assert resolved.parent == tmp_path / "cache"


def test_an_archive_without_a_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "weights.bin").write_bytes(b"0")
    (tmp_path / "b.txt").write_text("b")
    with tarfile.open(tmp_path / "m.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "a", arcname="a")
        tar.add(tmp_path / "b.txt", arcname="b.txt")
    with pytest.raises(ValidationException, match=r"no MLmodel file .* \(found: a, b.txt\)"):
        resolve(str(tmp_path / "m.tar.gz"), tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_any_archive_for_a_container_that_is_not_mlflow(tmp_path: Path) -> None:
    """Bring your own container: the tree is the model directory as it is (SageMaker mounts
    model.tar.gz's files at /opt/ml/model), cached like any archive; an MLflow resolution of
    the same archive is still refused."""
    (tmp_path / "model.rds").write_bytes(b"R model")
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "vocab.txt").write_text("a b")
    with tarfile.open(tmp_path / "m.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "model.rds", arcname="model.rds")
        tar.add(tmp_path / "extra", arcname="extra")
    uri = (tmp_path / "m.tar.gz").as_uri()
    resolved = Path(resolve(uri, tmp_path / "cache", mlflow_model=False))
    assert resolved.parent == tmp_path / "cache"
    assert sorted(p.name for p in resolved.iterdir()) == ["extra", "model.rds"]
    assert (resolved / "model.rds").read_bytes() == b"R model"
    assert resolve(uri, tmp_path / "cache", mlflow_model=False) == str(resolved)  # cached
    with pytest.raises(ValidationException, match=r"no MLmodel file .* \(found: extra, model"):
        resolve(uri, tmp_path / "cache")


def test_a_file_that_is_not_an_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.tar.gz").write_bytes(b"PK\x03\x04 a zip, not a tar.gz")
    with pytest.raises(ValidationException, match=r"is not a readable \.tar\.gz archive"):
        resolve(str(tmp_path / "model.tar.gz"), tmp_path / "cache")


def test_a_truncated_archive_is_refused(model: Path, tmp_path: Path, extraction: str) -> None:
    data = model_tar(model, tmp_path / "whole.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValidationException, match=r"is not a readable \.tar\.gz archive"):
        resolve(str(tmp_path / "cut.tar.gz"), tmp_path / "cache")


def test_an_archive_cut_at_its_end_is_refused(model: Path, tmp_path: Path, extraction: str) -> None:
    """Every member whole, the gzip stream's end missing: a cut between members reads so."""
    data = model_tar(model, tmp_path / "whole.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[:-8])  # without gzip's CRC and size
    with pytest.raises(ValidationException, match=r"is not a readable \.tar\.gz archive"):
        resolve(str(tmp_path / "cut.tar.gz"), tmp_path / "cache")


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        (member("../evil"), "'..' in its path"),
        (member("linear/../../evil"), "'..' in its path"),
        (member("/etc/evil"), "absolute path"),
        (member("C:/evil"), "absolute path"),
        (member("linear/passwd", tarfile.SYMTYPE, "/etc/passwd"), "symlink to the absolute path"),
        (member("linear/up", tarfile.SYMTYPE, "../../evil"), "symlink to '../../evil', outside"),
        (member("linear/up", tarfile.SYMTYPE, "../.."), "outside the archive"),
        (member("hard", tarfile.LNKTYPE, "/etc/passwd"), "hardlink to the absolute path"),
        (member("hard", tarfile.LNKTYPE, "../evil"), "hardlink to '../evil', outside"),
        (member("linear/tty", tarfile.CHRTYPE), "device or FIFO file"),
        (member("linear/disk", tarfile.BLKTYPE), "device or FIFO file"),
        (member("linear/pipe", tarfile.FIFOTYPE), "device or FIFO file"),
    ],
    ids=lambda v: v.name if isinstance(v, tarfile.TarInfo) else "",
)
def test_unsafe_members_are_refused_by_name(
    hostile: tarfile.TarInfo, reason: str, model: Path, tmp_path: Path, extraction: str
) -> None:
    archive = tar_with(model, tmp_path / "evil.tar.gz", hostile, b"pwned")
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(ValidationException) as caught:
        resolve(str(archive), cache)
    assert caught.value.message.startswith(f"Unsafe member {hostile.name!r} in model archive ")
    assert reason in caught.value.message
    assert list(cache.iterdir()) == []  # the partial tree is gone
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "deep" / "evil").exists()


@pytest.mark.parametrize(
    "hostile",
    [
        # each link alone stays inside; through the first, the second leads out
        [member("linear/d", tarfile.SYMTYPE, "."), member("linear/d/e", tarfile.SYMTYPE, "../..")],
        [member("linear/a", tarfile.SYMTYPE, ".."), member("linear/a/b", tarfile.SYMTYPE, "..")],
    ],
    ids=["through-a-link-to-its-directory", "through-a-link-to-the-top"],
)
def test_links_that_lead_out_through_earlier_links_are_refused(
    hostile: list[tarfile.TarInfo], model: Path, tmp_path: Path, extraction: str
) -> None:
    archive = tar_of(model, tmp_path / "evil.tar.gz", hostile)
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(ValidationException) as caught:
        resolve(str(archive), cache)
    assert caught.value.message.startswith(f"Unsafe member {hostile[-1].name!r} in model archive ")
    assert list(cache.iterdir()) == []
    assert not (tmp_path / "deep" / "evil").exists()


def test_modes_are_the_data_filters(model: Path, tmp_path: Path, extraction: str) -> None:
    setuid, private = member("linear/setuid"), member("linear/private")
    setuid.mode, private.mode = 0o4777, 0o000
    archive = tar_of(model, tmp_path / "m.tar.gz", [setuid, private])
    resolved = Path(resolve(str(archive), tmp_path / "cache"))
    assert (resolved / "setuid").stat().st_mode & 0o7777 == 0o755
    assert (resolved / "private").stat().st_mode & 0o7777 == 0o600


def test_links_inside_the_tree_are_fine(model: Path, tmp_path: Path, extraction: str) -> None:
    archive = tar_with(
        model, tmp_path / "m.tar.gz", member("linear/MLmodel.link", tarfile.SYMTYPE, "MLmodel")
    )
    resolved = Path(resolve(str(archive), tmp_path / "cache"))
    assert (resolved / "MLmodel.link").read_text() == (model / "MLmodel").read_text()


def test_size_limits(model: Path, tmp_path: Path, extraction: str) -> None:
    archive = model_tar(model, tmp_path / "model.tar.gz")
    with pytest.raises(ValidationException, match="unpacks to more than 1000 bytes"):
        resolve(str(archive), tmp_path / "cache", max_bytes=1000)


def test_a_decompression_bomb_is_refused_before_it_is_written(
    model: Path, tmp_path: Path, extraction: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 GiB of zeros from a 1 MB archive used to unpack fully (81 s) before it was refused:
    the ratio is checked on the member's declared size, before any byte of it is written."""
    monkeypatch.setattr(model_data, "RATIO_FLOOR", 64 * 1024)  # a small floor: a small bomb
    zeros = tmp_path / "zeros"
    zeros.write_bytes(bytes(8 * 1024 * 1024))
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model, arcname="linear")
        tar.add(zeros, arcname="linear/zeros")
    assert archive.stat().st_size * model_data.MAX_RATIO < zeros.stat().st_size
    with pytest.raises(ValidationException) as caught:
        resolve(str(archive), tmp_path / "cache")
    message = caught.value.message
    assert "unpacks to more than 100 times its size" in message
    assert "'linear/zeros'" in message
    assert "decompression bomb" in message
    assert not list((tmp_path / "cache").rglob("zeros"))  # nothing of it reached the disk


def test_an_archive_of_too_many_members_is_refused(
    model: Path, tmp_path: Path, extraction: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_data, "MAX_MEMBERS", 30)
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model, arcname="linear")
        for i in range(40):
            info = tarfile.TarInfo(f"linear/empty-{i}")
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ValidationException, match="holds more than 30 members"):
        resolve(str(archive), tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("empty-*"))


@pytest.mark.slow
def test_an_unpacked_archive_serves(model: Path, tmp_path: Path) -> None:
    resolved = resolve(str(model_tar(model, tmp_path / "model.tar.gz")), tmp_path / "cache")

    async def scenario() -> None:
        backend = ProcessBackend(tmp_path / "state")
        spec = InstanceSpec(endpoint="ep", variant="v", instance_id="ep-v-1", model_path=resolved)
        instance = await backend.wait_healthy(await backend.launch(spec))
        try:
            assert instance.state is InstanceState.HEALTHY, instance.failure
            r = httpx.post(instance.url + "/invocations", json=PAYLOAD, timeout=10)
            assert (r.status_code, r.json()) == (200, EXPECTED)
        finally:
            await backend.stop(instance)

    asyncio.run(scenario())


# ------------------------------------------------------------------------- https
class Web:
    """A static file server on 127.0.0.1 in a thread, http or https; records the paths asked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requested: list[str] = []
        requested = self.requested

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                requested.append(self.path)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that closes early (a cache hit) is not an error

        self.server = Server(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.thread: threading.Thread | None = None

    def start(self, tls: ssl.SSLContext | None = None) -> str:
        """Serve; returns host:port."""
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self.thread.start()
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join(5)
        self.server.server_close()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    (tmp_path / "www").mkdir()
    server = Web(tmp_path / "www")
    yield server
    server.close()


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a certificate of 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


def test_https_downloads_once_per_version(model: Path, tmp_path: Path, web: Web) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    host = web.start(server_tls)
    model_tar(model, web.root / "model.tar.gz")
    cache = tmp_path / "cache"

    def client() -> httpx.Client:
        return httpx.Client(verify=client_tls, timeout=10)

    uri = f"https://{host}/model.tar.gz?X-Amz-Signature=secret"
    resolved = resolve(uri, cache, http_client_factory=client)
    assert (Path(resolved) / "MLmodel").is_file()
    assert resolve(uri, cache, http_client_factory=client) == resolved  # Last-Modified: cached
    assert len(web.requested) == 2
    assert len(list(cache.iterdir())) == 1

    missing = f"https://{host}/missing.tar.gz?X-Amz-Signature=secret"
    with pytest.raises(ValidationException) as caught:
        resolve(missing, cache, http_client_factory=client)
    assert caught.value.message == (
        f"Cannot download model data https://{host}/missing.tar.gz: HTTP 404."
    )  # the query (a presigned URL's signature) is not repeated
    with pytest.raises(ValidationException, match="Cannot download model data"):
        resolve(uri, cache)  # a certificate the default client does not trust


def test_plain_http_from_this_machine(model: Path, tmp_path: Path, web: Web) -> None:
    host = web.start()
    model_tar(model, web.root / "model.tar.gz")
    resolved = resolve(f"http://{host}/model.tar.gz", tmp_path / "cache")
    assert (Path(resolved) / "MLmodel").is_file()
    port = host.split(":")[1]
    assert resolve(f"http://localhost:{port}/model.tar.gz", tmp_path / "cache") != resolved


# ------------------------------------------------------------------------- s3 (moto server)
@pytest.fixture(scope="module")
def s3() -> Iterator[Callable[[], Any]]:
    """A client factory for a moto S3 server started for these tests."""
    if importlib.util.find_spec("moto") is None:
        pytest.skip("moto[server] is not installed (dev extra)")
    import boto3

    for _ in range(3):  # a free port can be taken before moto binds it: try another
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                httpx.get(url + "/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        if proc.poll() is None:
            break
    else:
        raise AssertionError("moto server did not start")

    def factory() -> Any:
        return boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    factory().create_bucket(Bucket="models")
    yield factory
    proc.terminate()
    proc.wait(10)


def test_s3_model_tar_gz(model: Path, tmp_path: Path, s3: Callable[[], Any]) -> None:
    client, cache = s3(), tmp_path / "cache"
    archive = model_tar(model, tmp_path / "model.tar.gz")
    client.upload_file(str(archive), "models", "churn/model.tar.gz")
    uri = "s3://models/churn/model.tar.gz"
    resolved = resolve(uri, cache, s3_client_factory=s3)
    assert Path(resolved).name == "linear"
    assert (Path(resolved) / "MLmodel").is_file()
    assert resolve(uri, cache, s3_client_factory=s3, compression="Gzip") == resolved  # cached
    # A new version of the object (another ETag) is another cache entry.
    v2 = model_tar(model, tmp_path / "v2.tar.gz", arcname=".")
    client.upload_file(str(v2), "models", "churn/model.tar.gz")
    second = resolve(uri, cache, s3_client_factory=s3)
    assert second != resolved
    assert Path(second).parent == cache
    with pytest.raises(ValidationException, match=r"model data s3://models/nope\.tar\.gz: 404"):
        resolve("s3://models/nope.tar.gz", cache, s3_client_factory=s3)
    with pytest.raises(ValidationException, match=r"s3://missing-bucket/m\.tar\.gz: "):
        resolve("s3://missing-bucket/m.tar.gz", cache, s3_client_factory=s3)


def test_s3_uncompressed_prefix(model: Path, tmp_path: Path, s3: Callable[[], Any]) -> None:
    client, cache = s3(), tmp_path / "cache"
    for path in model.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), "models", f"raw/linear/{path.relative_to(model)}")
    client.put_object(Bucket="models", Key="raw/linear/", Body=b"")  # a "folder" marker
    resolved = resolve("s3://models/raw/linear/", cache, s3_client_factory=s3)
    assert (Path(resolved) / "MLmodel").read_bytes() == (model / "MLmodel").read_bytes()
    assert sorted(p.name for p in Path(resolved).iterdir()) == sorted(
        p.name for p in model.iterdir()
    )
    same = resolve("s3://models/raw/linear", cache, s3_client_factory=s3, compression="None")
    assert (Path(same) / "MLmodel").is_file()
    with pytest.raises(ValidationException, match="no objects under this S3 prefix"):
        resolve("s3://models/raw/none/", cache, s3_client_factory=s3)
    client.put_object(Bucket="models", Key="evil/../x", Body=b"x")
    with pytest.raises(ValidationException, match=r"Unsafe object key 'evil/\.\./x'"):
        resolve("s3://models/evil/", cache, s3_client_factory=s3)
