"""Model data: turn a SageMaker ModelDataUrl (or ModelDataSource S3Uri) into a model URI.

What `pier serve --model-uri` takes comes out:
- `models:/`, `runs:/` and `mlflow-artifacts:/` URIs pass through (MLflow resolves them);
- a local directory or `file://` directory passes through, as an absolute path;
- a `.tar.gz` archive (SageMaker's model.tar.gz: a local or `file://` file, `https://`, or
  `s3://`) is downloaded and unpacked into a cache directory, keyed by the URI and the
  object's version (ETag, Last-Modified, size), so a second resolution costs one HEAD;
- an `s3://` prefix (ending in `/`, or CompressionType None: SageMaker's uncompressed
  ModelDataSource) is downloaded file by file into the cache.

Archives are unpacked safely: members with absolute paths or `..`, links pointing outside the
tree, and device files are refused with the member's name, before tarfile's own "data" filter
(which also checks every path against the real file system while extracting). Pythons before
3.11.4 (Debian 12's 3.11.2) have no extraction filters: there pier extracts by hand with the
same checks, the real-path ones included, and the data filter's modes.
If the tree has no MLmodel at its top but a single top-level directory that does, that
directory is the model.

Blocking I/O: call `resolve` from a thread on an event loop (asyncio.to_thread).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import ipaddress
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urlsplit, urlunsplit
from urllib.request import url2pathname

import httpx

from pier.errors import ValidationException
from pier.storage import S3Client, S3ClientFactory, s3_client

PASS_THROUGH = ("models:", "runs:", "mlflow-artifacts:")
DEFAULT_MAX_BYTES = 64 * 1024**3  # per download and unpacked: refuses decompression bombs
# Decompression bombs, checked on each member's declared size before it is written (a tar
# header states it, and tarfile reads exactly that much), so a bomb is refused at once rather
# than after unpacking: an archive unpacks to at most MAX_RATIO times its own size (models
# compress 2-10x; zeros 1000x), or RATIO_FLOOR for small archives, and holds at most
# MAX_MEMBERS members (an MLflow model has a few dozen files; a million empty ones would fill
# the inode table).
MAX_RATIO = 100
RATIO_FLOOR = 256 * 1024**2
MAX_MEMBERS = 100_000
CHUNK = 1024 * 1024
_LOOPBACK_NAMES = ("localhost",)


def default_http_client() -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)


def resolve(
    uri: str,
    cache_dir: Path,
    *,
    compression: Literal["Gzip", "None"] | None = None,
    s3_client_factory: S3ClientFactory = s3_client,
    http_client_factory: Callable[[], httpx.Client] = default_http_client,
    max_bytes: int = DEFAULT_MAX_BYTES,
    mlflow_model: bool = True,
) -> str:
    """A model URI or local directory for `pier serve --model-uri`; raises ValidationException.

    `compression` is ModelDataSource.S3DataSource.CompressionType when known: "None" means the
    URI is an S3 prefix of model files, "Gzip" a model.tar.gz. `mlflow_model=False` is for a
    container that is not pier's MLflow server (bring your own container): the unpacked tree
    is the model directory as it is, whatever it holds, as SageMaker mounts it.
    """
    uri = uri.strip()
    if not uri:
        raise ValidationException("The model data URI is empty.")
    if uri.startswith(PASS_THROUGH):
        return uri
    parsed = urlsplit(uri)
    scheme = parsed.scheme.lower()
    if len(scheme) <= 1 or scheme == "file":  # a path (also C:\...), or file://
        path = _local_path(uri)
        if path.is_dir():
            return str(path.absolute())
        if not path.is_file():
            what = "does not exist" if not path.exists() else "is not a file or directory"
            raise ValidationException(f"Model data {uri} {what}.")
        stat = path.stat()
        target = _cache_target(cache_dir, uri, str(stat.st_size), str(stat.st_mtime_ns))
        return _unpack_cached(path, target, uri, max_bytes, mlflow_model)
    if scheme in ("http", "https"):
        return _resolve_http(uri, cache_dir, http_client_factory, max_bytes, mlflow_model)
    if scheme == "s3":
        return _resolve_s3(uri, cache_dir, compression, s3_client_factory, max_bytes, mlflow_model)
    raise ValidationException(
        f"Unsupported model data URI {_shown(uri)}: use s3://, https://, file://, a local "
        "path, models:/ or runs:/."
    )


# ---------------------------------------------------------------------------- sources
def _local_path(uri: str) -> Path:
    parsed = urlsplit(uri)
    if parsed.scheme.lower() != "file":
        return Path(uri)
    if parsed.netloc not in ("", "localhost"):
        raise ValidationException(f"Model data {uri}: file:// URIs must name a local path.")
    return Path(url2pathname(parsed.path))


def _resolve_http(
    uri: str,
    cache_dir: Path,
    client_factory: Callable[[], httpx.Client],
    max_bytes: int,
    mlflow_model: bool,
) -> str:
    _refuse_plain_http(uri, uri)
    shown = _shown(uri)
    try:
        with client_factory() as client, client.stream("GET", uri) as response:
            _refuse_plain_http(str(response.url), uri)  # also after redirects
            if response.status_code != 200:
                raise ValidationException(
                    f"Cannot download model data {shown}: HTTP {response.status_code}."
                )
            etag = response.headers.get("etag", "")
            modified = response.headers.get("last-modified", "")
            target = None
            if etag or modified:  # a version we can key on before downloading
                length = response.headers.get("content-length", "")
                target = _cache_target(cache_dir, uri, etag, modified, length)
                if target.is_dir():
                    return _found(target, shown, mlflow_model)
            with _download_file(cache_dir) as (archive, out):
                digest = _copy(response.iter_bytes(CHUNK), out, max_bytes, shown)
                if target is None:  # no validators: key on the content
                    target = _cache_target(cache_dir, uri, digest)
                return _unpack_cached(archive, target, shown, max_bytes, mlflow_model)
    except httpx.HTTPError as exc:
        raise ValidationException(f"Cannot download model data {shown}: {exc}") from None


def _refuse_plain_http(url: str, uri: str) -> None:
    """Model archives hold pickles: plain http only from this machine."""
    parsed = urlsplit(url)
    if parsed.scheme.lower() != "http":
        return
    host = parsed.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host.lower() in _LOOPBACK_NAMES
    if not loopback:
        raise ValidationException(
            f"Model data {_shown(uri)}: plain http:// is accepted only from this machine "
            "(localhost); use https://."
        )


def _resolve_s3(
    uri: str,
    cache_dir: Path,
    compression: str | None,
    client_factory: S3ClientFactory,
    max_bytes: int,
    mlflow_model: bool,
) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    parsed = urlsplit(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket:
        raise ValidationException(f"Model data {uri}: the S3 URI names no bucket.")
    client = client_factory()
    try:
        if compression == "None" or not key or key.endswith("/"):
            return _download_prefix(client, uri, bucket, key, cache_dir, max_bytes, mlflow_model)
        head = client.head_object(Bucket=bucket, Key=key)
        size = int(head["ContentLength"])
        target = _cache_target(cache_dir, uri, str(head.get("ETag", "")), str(size))
        if target.is_dir():
            return _found(target, uri, mlflow_model)
        if size > max_bytes:
            raise ValidationException(f"Model data {uri} is larger than {max_bytes} bytes.")
        etag = {"IfMatch": head["ETag"]} if head.get("ETag") else {}  # what we keyed on
        body = client.get_object(Bucket=bucket, Key=key, **etag)["Body"]
        with _download_file(cache_dir) as (archive, out):
            _copy(_chunks(body), out, max_bytes, uri)
            return _unpack_cached(archive, target, uri, max_bytes, mlflow_model)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "?")
        raise ValidationException(
            f"Cannot read model data {uri}: {code} {error.get('Message', '')}".rstrip() + "."
        ) from None
    except BotoCoreError as exc:
        raise ValidationException(f"Cannot read model data {uri}: {exc}") from None


def _download_prefix(
    client: S3Client,
    uri: str,
    bucket: str,
    prefix: str,
    cache_dir: Path,
    max_bytes: int,
    mlflow_model: bool,
) -> str:
    """An uncompressed model: every object under the prefix, at its path below it."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    objects: list[tuple[str, str, int]] = []
    token: dict[str, str] = {}
    while True:
        page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, **token)
        objects += [(o["Key"], o.get("ETag", ""), int(o["Size"])) for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            break
        token = {"ContinuationToken": page["NextContinuationToken"]}
    files = [(k[len(prefix) :], k, size) for k, _, size in objects if not k.endswith("/")]
    if not files:
        raise ValidationException(f"Model data {uri}: no objects under this S3 prefix.")
    for relative, key, _ in files:
        problem = _unsafe_path(relative)
        if problem:
            raise ValidationException(f"Unsafe object key {key!r} under {uri}: {problem}.")
    if sum(size for _, _, size in files) > max_bytes:
        raise ValidationException(f"Model data {uri} is larger than {max_bytes} bytes.")
    target = _cache_target(cache_dir, uri, *(f"{k} {e} {s}" for k, e, s in sorted(objects)))
    if target.is_dir():
        return _found(target, uri, mlflow_model)
    with _staging_dir(target) as staging:
        for relative, key, _ in files:
            dest = staging.joinpath(*relative.split("/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            with dest.open("wb") as out:
                _copy(_chunks(body), out, max_bytes, uri)
        return _install(staging, target, uri, mlflow_model)


# ---------------------------------------------------------------------------- cache
def _cache_target(cache_dir: Path, uri: str, *version: str) -> Path:
    key = hashlib.sha256("\n".join((uri, *version)).encode()).hexdigest()[:40]
    return cache_dir / key


@contextlib.contextmanager
def _download_file(cache_dir: Path) -> Iterator[tuple[Path, BinaryIO]]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".download-", dir=cache_dir)
    try:
        with os.fdopen(fd, "w+b") as out:
            yield Path(name), out
    finally:
        Path(name).unlink(missing_ok=True)


def _chunks(body: Any) -> Iterator[bytes]:
    """The content of a boto3 StreamingBody, chunk by chunk."""
    while chunk := body.read(CHUNK):
        yield chunk


def _copy(chunks: Iterator[bytes], out: BinaryIO, max_bytes: int, shown: str) -> str:
    """Write chunks to `out` (then flush); the sha256 of what was written."""
    digest, written = hashlib.sha256(), 0
    for chunk in chunks:
        written += len(chunk)
        if written > max_bytes:
            raise ValidationException(f"Model data {shown} is larger than {max_bytes} bytes.")
        digest.update(chunk)
        out.write(chunk)
    out.flush()
    return digest.hexdigest()


@contextlib.contextmanager
def _staging_dir(target: Path) -> Iterator[Path]:
    """A directory beside `target`, removed unless _install moved it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    # mkdtemp makes it private (0700); the model is mounted read-only into containers whose
    # user is not the platform's, so it must be readable by others like any unpacked file.
    staging.chmod(0o755)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(staging: Path, target: Path, shown: str, mlflow_model: bool) -> str:
    """Check the tree holds a model, then move it into place in one rename."""
    _found(staging, shown, mlflow_model)
    try:
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # not a concurrent resolution that got there first
            raise
    return _found(target, shown, mlflow_model)


def _unpack_cached(
    archive: Path, target: Path, shown: str, max_bytes: int, mlflow_model: bool
) -> str:
    if target.is_dir():
        return _found(target, shown, mlflow_model)
    with _staging_dir(target) as staging:
        _safe_extract(archive, staging, shown, max_bytes)
        return _install(staging, target, shown, mlflow_model)


def _found(root: Path, shown: str, mlflow_model: bool) -> str:
    """The model directory in an unpacked tree: for an MLflow model, where its MLmodel is;
    for any other container, the tree itself (SageMaker mounts it as it is)."""
    return _model_dir(root, shown) if mlflow_model else str(root)


def _model_dir(root: Path, shown: str) -> str:
    if (root / "MLmodel").is_file():
        return str(root)
    entries = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    if len(entries) == 1 and (root / entries[0] / "MLmodel").is_file():
        return str(root / entries[0])
    found = ", ".join(entries[:10]) or "nothing"
    raise ValidationException(
        f"Model data {_shown(shown)} holds no MLflow model: no MLmodel file at its top or in "
        f"a single top-level directory (found: {found})."
    )


# ---------------------------------------------------------------------------- safe unpacking
def _unsafe_path(name: str) -> str | None:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "'..' in its path"
    return None


def _escapes(path: str) -> bool:
    normal = posixpath.normpath(path)
    return normal == ".." or normal.startswith(("../", "/"))


def _unsafe_member(member: tarfile.TarInfo) -> str | None:
    problem = _unsafe_path(member.name)
    if problem:
        return problem
    if member.ischr() or member.isblk() or member.isfifo():
        return "device or FIFO file"
    if member.issym() or member.islnk():
        kind, link = ("symlink" if member.issym() else "hardlink"), member.linkname
        if _unsafe_path(link) == "absolute path":
            return f"{kind} to the absolute path {link!r}"
        # A symlink is relative to its directory, a hardlink to the archive's root.
        base = posixpath.dirname(member.name) if member.issym() else ""
        if _escapes(posixpath.join(base, link)):
            return f"{kind} to {link!r}, outside the archive"
    elif not (member.isreg() or member.isdir()):
        return "unsupported member type"
    return None


# tarfile's extraction filters arrived in 3.11.4; the floor is 3.11 (read when extracting, so a
# test can take the other path).
FILTERS = hasattr(tarfile, "data_filter")


def _safe_extract(
    archive: Path, dest: Path, shown: str, max_bytes: int = DEFAULT_MAX_BYTES
) -> None:
    """Unpack a (gzip-compressed) tar archive into `dest`, refusing unsafe members and
    archives that would unpack beyond the limits above (before the member is written)."""
    compressed = archive.stat().st_size
    limit = min(max_bytes, max(RATIO_FLOOR, MAX_RATIO * compressed))
    unpacked = members = 0

    def check(member: tarfile.TarInfo) -> None:
        nonlocal unpacked, members
        problem = _unsafe_member(member)
        if problem:
            raise _unsafe(member, shown, problem)
        unpacked += member.size
        members += 1
        if unpacked > limit:
            why = (
                f"more than {max_bytes} bytes"
                if limit == max_bytes
                else f"more than {MAX_RATIO} times its size of {compressed} bytes"
            )
            raise ValidationException(
                f"Model archive {_shown(shown)} unpacks to {why} (at member {member.name!r}): "
                "refused as a decompression bomb. Serve a model this large from a directory "
                "or an MLflow URI instead of an archive."
            )
        if members > MAX_MEMBERS:
            raise ValidationException(
                f"Model archive {_shown(shown)} holds more than {MAX_MEMBERS} members "
                f"(at member {member.name!r}): refused. Serve it from a directory instead."
            )

    try:
        with tarfile.open(archive, mode="r|*") as tar:  # one pass: streams the decompression
            if FILTERS:
                _extract_filtered(tar, dest, shown, check)
            else:
                _extract_by_hand(tar, dest, shown, check)
        _whole_gzip(archive)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValidationException(
            f"Model data {_shown(shown)} is not a readable .tar.gz archive: {exc}."
        ) from None


def _whole_gzip(archive: Path) -> None:
    """tarfile's stream mode reads a gzip stream cut between two members (or before its
    trailer) as a shorter archive: read it to its end-of-stream marker and CRC (gzip raises
    EOFError or BadGzipFile). A second decompression, once per archive unpacked."""
    with archive.open("rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            return
    with gzip.open(archive) as stream:
        while stream.read(1 << 20):
            pass


def _unsafe(member: tarfile.TarInfo, shown: str, problem: object) -> ValidationException:
    return ValidationException(
        f"Unsafe member {member.name!r} in model archive {_shown(shown)}: {problem}."
    )


def _extract_filtered(
    tar: tarfile.TarFile, dest: Path, shown: str, check: Callable[[tarfile.TarInfo], None]
) -> None:
    def data(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        check(member)
        return tarfile.data_filter(member, path)

    try:
        tar.extractall(dest, filter=data)  # noqa: S202 (every member is checked)
    except tarfile.FilterError as exc:
        raise _unsafe(exc.tarinfo, shown, exc) from None


def _extract_by_hand(
    tar: tarfile.TarFile, dest: Path, shown: str, check: Callable[[tarfile.TarInfo], None]
) -> None:
    """What `_extract_filtered` does, on a Python without filters: `check`, then the data
    filter's real-path checks (a link extracted earlier may redirect a later member out of the
    tree), then the member written with the data filter's modes (no owner, no setuid, no
    group or other write)."""
    root = os.path.realpath(dest)

    def inside(path: str) -> bool:
        return os.path.commonpath([root, os.path.realpath(path)]) == root

    for member in tar:
        check(member)
        path = os.path.join(root, member.name)
        if not inside(path):
            raise _unsafe(member, shown, "its path leads outside the archive")
        if member.issym() and not inside(os.path.join(os.path.dirname(path), member.linkname)):
            raise _unsafe(member, shown, f"symlink to {member.linkname!r}, outside the archive")
        if member.islnk() and not inside(os.path.join(root, member.linkname)):
            raise _unsafe(member, shown, f"hardlink to {member.linkname!r}, outside the archive")
        if member.isdir():
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path) and not os.path.isdir(path):
            os.unlink(path)  # a later member replaces an earlier one (never writes through it)
        if member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            os.link(os.path.join(root, member.linkname), path)
        else:
            source = tar.extractfile(member)
            assert source is not None  # a regular file (check refused every other type)
            with source, open(path, "xb") as target:
                # A cut archive streams short data, not an error: count it (as extractall does).
                copied = 0
                while chunk := source.read(1 << 20):
                    target.write(chunk)
                    copied += len(chunk)
            if copied != member.size:
                raise tarfile.ReadError(f"unexpected end of data in {member.name!r}")
            mode = member.mode & 0o755
            if not mode & 0o100:  # not executable by its owner: by nobody
                mode &= ~0o111
            os.chmod(path, mode | 0o600)


def _shown(uri: str) -> str:
    """The URI without credentials or query (a presigned URL's query is a secret)."""
    parsed = urlsplit(uri)
    if not parsed.scheme or len(parsed.scheme) == 1:
        return uri
    netloc = parsed.hostname or ""
    if parsed.port:
        netloc += f":{parsed.port}"
    return urlunsplit((parsed.scheme, netloc, parsed.path, "", ""))
