"""Locations and atomic output.

A location is a local path or a URL (``s3://``, ``https://``); relative paths in configs and tables are
resolved against the folder of the file naming them. Local output is written under a temporary name in
the same folder, then renamed."""

from __future__ import annotations

import os
import posixpath
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from predictd_core.errors import PredictdInputError

REMOTE_SCHEMES = ("s3://", "https://", "http://", "gs://", "az://", "abfs://")


def temporary_sibling(path: str | Path) -> Path:
    """A unique hidden name beside ``path`` (same filesystem, so the rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def write_atomic(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
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


def is_remote(location: str | os.PathLike) -> bool:
    """Return True when ``location`` is an object-store or web URL rather than a local path."""
    return str(location).startswith(REMOTE_SCHEMES)


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


def read_remote_text(url: str, field: str, missing: str) -> str:
    """The text of the object at ``url``; a missing or unreadable object is a PredictdInputError naming
    ``url`` and ``field`` (``missing`` says what is absent, and the reason follows)."""
    import fsspec  # object stores (s3fs, adlfs) are optional extras

    try:
        with fsspec.open(url, "rt") as handle:
            return handle.read()
    except FileNotFoundError:
        raise PredictdInputError(url, field, missing) from None
    except Exception as error:  # the cause differs per scheme; the user needs the URL and the reason
        raise PredictdInputError(url, field, f"cannot read: {error}") from error
