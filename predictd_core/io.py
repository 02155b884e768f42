"""Locations and atomic output.

A location is a local path (``Path``) or a URL string (``s3://``, ``https://``); relative paths in configs
and tables are resolved against the folder of the file naming them. This module is the one seam between
the pipeline and where its files live: every output goes through :func:`write_atomic` or
:func:`staged_folder`, every artifact is read back through :func:`read_bytes` / :func:`is_file`.

Atomic means a reader never sees part of a file. Locally a file is written under a temporary name in
the same folder, then renamed. On an object store each object is one complete PUT (S3 makes an object
visible only once its upload is complete), so no temporary names are needed and nothing is ever
deleted there: jobs of one run share its prefix, and a failing job must not remove what others wrote.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

from predictd_core.errors import PredictdInputError

REMOTE_SCHEMES = ("s3://", "https://", "http://", "gs://", "az://", "abfs://")

Location = str | os.PathLike


def temporary_sibling(path: str | Path) -> Path:
    """A unique hidden name beside ``path`` (same filesystem, so the rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def is_remote(location: Location) -> bool:
    """Return True when ``location`` is an object-store or web URL rather than a local path."""
    return str(location).startswith(REMOTE_SCHEMES)


def _filesystem(url: str):
    """The fsspec filesystem serving ``url`` and the path inside it (s3fs for ``s3://``)."""
    import fsspec  # object stores (s3fs, adlfs) are optional extras

    return fsspec.core.url_to_fs(url)


def join_location(base: Location, *parts: str) -> str | Path:
    """``base/part/...``: a URL (str) for a remote ``base``, else a local Path."""
    if is_remote(base):
        return "/".join([str(base).rstrip("/"), *(part.strip("/") for part in parts)])
    return Path(base).joinpath(*parts)


def relative_location(location: Location, base: Location) -> str:
    """``location`` relative to the folder ``base`` (both local or both URLs), ``/``-separated."""
    location, base = str(location), str(base).rstrip("/")
    if is_remote(base):
        if not location.startswith(base + "/"):
            raise ValueError(f"{location} is not inside {base}")
        return location[len(base) + 1:]
    return Path(location).relative_to(base).as_posix()


def location_name(location: Location) -> str:
    """The last segment of a path or URL (``s3://b/runs/x`` -> ``x``)."""
    return posixpath.basename(str(location).rstrip("/"))


def write_atomic(location: Location, payload: bytes) -> None:
    """Write ``payload`` to ``location`` so that readers see the old file or the whole new one.

    Local: a temporary sibling, fsynced, then renamed over the target. URL: one PUT of the whole object.
    """
    if is_remote(location):
        fs, path = _filesystem(str(location))
        fs.pipe_file(path, payload)
        return
    path = Path(location)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_bytes(location: Location) -> bytes:
    """The bytes of a local file or remote object; FileNotFoundError when there is none."""
    if is_remote(location):
        fs, path = _filesystem(str(location))
        return fs.cat_file(path)
    return Path(location).read_bytes()


def is_file(location: Location) -> bool:
    """True when a local file or remote object exists at ``location``."""
    if is_remote(location):
        fs, path = _filesystem(str(location))
        return fs.isfile(path)
    return Path(location).is_file()


@contextmanager
def staged_folder(location: Location) -> Iterator[Path]:
    """Yield an empty local folder whose files become the folder ``location`` only if the block succeeds.

    Local: a hidden sibling, renamed over ``location`` (a previous folder there is replaced whole). URL:
    a temporary folder whose files are uploaded one complete object each after the block; objects
    already under ``location`` are overwritten by name, never deleted. If the block raises, nothing is
    published. For tools that can only write local files (pyBigWig).
    """
    if is_remote(location):
        work = Path(tempfile.mkdtemp(prefix="predictd-stage-"))
        try:
            yield work
            fs, path = _filesystem(str(location))
            for file in sorted(work.iterdir()):
                fs.put_file(str(file), f"{path.rstrip('/')}/{file.name}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    target = Path(location)
    work = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    work.mkdir(parents=True)
    try:
        yield work
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def parent_location(location: str) -> str:
    """The folder of a file: an absolute local directory, or the URL up to its last ``/``."""
    if is_remote(location):
        parts = urlsplit(location)
        return urlunsplit(parts._replace(path=posixpath.dirname(parts.path) or "/", query="", fragment=""))
    return str(Path(location).resolve().parent)


def resolve_location(base: str, value: str | None) -> str | None:
    """``value`` as an absolute location: URLs and absolute paths as they are, relative ones joined to the
    folder ``base`` (a local directory or a URL; ``..`` may climb within a bucket, never above it)."""
    if value is None or is_remote(value):
        return value
    if is_remote(base):
        if value.startswith("/"):
            return value
        parts = urlsplit(base)
        joined = posixpath.normpath(posixpath.join(parts.path or "/", value))
        return urlunsplit(parts._replace(path=joined if joined.startswith("/") else "/" + joined))
    return str((Path(base) / value).resolve())


def read_text(location: Location, field: str, missing: str) -> str:
    """The text of a local file or of the object at a URL; an absent one is a PredictdInputError naming
    ``location`` and ``field`` (``missing`` says what is absent). One reader for every text input."""
    if is_remote(location):
        return _read_remote_text(str(location), field, missing)
    if not Path(location).is_file():
        raise PredictdInputError(str(location), field, missing)
    return Path(location).read_text()


def _read_remote_text(url: str, field: str, missing: str) -> str:
    """:func:`read_text` for a URL: also an unreadable object is an error naming ``url`` and ``field``."""
    try:
        return read_bytes(url).decode()
    except FileNotFoundError:
        raise PredictdInputError(url, field, missing) from None
    except Exception as error:  # the cause differs per scheme; the user needs the URL and the reason
        raise PredictdInputError(url, field, f"cannot read: {error}") from error
