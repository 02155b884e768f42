"""Locations and atomic output.

A location is a local path (``Path``) or a URL string (``s3://``, ``az://``, ``https://``); relative paths in
configs and tables are resolved against the folder of the file naming them. This module is the one seam between
the pipeline and where its files live: every output goes through :func:`write_atomic` or
:func:`staged_folder`, every artifact is read back through :func:`read_bytes` / :func:`is_file`.

Atomic means a reader never sees part of a file. Locally a file is written under a temporary name in
the same folder, then renamed. On an object store each object is one complete PUT (S3 makes an object
visible only once its upload is complete; Azure Blob storage commits a blob only when its upload, or the
block list of a large one, is complete), so no temporary names are needed and nothing is ever deleted
there: jobs of one run share its prefix, and a failing job must not remove what others wrote.

Azure: ``az://CONTAINER/PATH`` (and ``abfs://CONTAINER/PATH``) name a blob of the storage account the
environment names; the account is the root and its containers are top-level folders, so
``az://configs/pilot.yaml`` naming ``../data/pilot/tracks.tsv`` reaches ``az://data/pilot/tracks.tsv``.
``abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH`` names its account itself; there the container is
the root, as the bucket is for ``s3://``. Credentials come from the environment (:func:`storage_options`).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from predictd_core.errors import PredictdInputError

AZURE_SCHEMES = ("az://", "abfs://", "abfss://")
REMOTE_SCHEMES = ("s3://", "https://", "http://", "gs://", *AZURE_SCHEMES)

Location = str | os.PathLike


def temporary_sibling(path: str | Path) -> Path:
    """A unique hidden name beside ``path`` (same filesystem, so the rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def is_remote(location: Location) -> bool:
    """Return True when ``location`` is an object-store or web URL rather than a local path."""
    return str(location).startswith(REMOTE_SCHEMES)


def storage_options(location: Location, environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The fsspec options that reach ``location``: for an Azure URL, the storage account and how to sign in;
    None for anything else (s3fs and the web need none beyond their own environment variables).

    Pass them wherever a URL is opened outside this module (``zarr.open_group(url, storage_options=...)``,
    ``fsspec.open(url, **options)``), so that every reader signs in the same way.

    Parameters
    ----------
    location : str or PathLike
        A local path or URL.
    environ : mapping, optional
        The environment to read (default ``os.environ``):

        * ``AZURE_STORAGE_CONNECTION_STRING``: an account with its key and endpoints (Azurite in the tests);
          used when set;
        * else ``AZURE_STORAGE_ACCOUNT_NAME``: the account, signed in with azure-identity's
          ``DefaultAzureCredential``; on a Batch node that is the user-assigned managed identity whose
          client id is ``AZURE_CLIENT_ID`` (no shared keys in the cloud). A URL that names its account
          (``abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/...``) needs neither.

    Returns
    -------
    dict or None
        Keyword arguments for the adlfs ``AzureBlobFileSystem``, or None for a location that is not Azure.

    Raises
    ------
    PredictdInputError
        For an Azure URL when the environment names no storage account, or names a service principal
        (``AZURE_STORAGE_CLIENT_ID``) without its secret.
    """
    if not str(location).startswith(AZURE_SCHEMES):
        return None
    environ = os.environ if environ is None else environ
    # Listings are never cached: jobs in other processes (and the handlers' server-side copies) add blobs
    # that a cached listing would hide from is_file.
    options: dict[str, Any] = {"use_listings_cache": False}
    connection_string = environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection_string:
        return {**options, "connection_string": connection_string}
    if environ.get("AZURE_STORAGE_CLIENT_ID") and not environ.get("AZURE_STORAGE_CLIENT_SECRET"):
        # adlfs would build a client-secret credential without a secret and fail at the first request
        raise PredictdInputError(str(location), "AZURE_STORAGE_CLIENT_ID",
                                 "set without AZURE_STORAGE_CLIENT_SECRET; a managed identity's client id goes "
                                 "in AZURE_CLIENT_ID")
    # anon=False always: adlfs would otherwise go anonymous when AZURE_STORAGE_ANON is set.
    options["anon"] = False
    if "@" in urlsplit(str(location)).netloc:
        return options  # adlfs takes the account from the URL; an account from the environment would collide
    account = environ.get("AZURE_STORAGE_ACCOUNT_NAME")
    if not account:
        raise PredictdInputError(str(location), "AZURE_STORAGE_ACCOUNT_NAME",
                                 "no storage account: set AZURE_STORAGE_ACCOUNT_NAME (signed in by a managed "
                                 "identity, AZURE_CLIENT_ID, or az login) or AZURE_STORAGE_CONNECTION_STRING")
    return {**options, "account_name": account}


def filesystem(url: str):
    """The fsspec filesystem serving ``url`` and the path inside it (s3fs for ``s3://``, adlfs for ``az://``)."""
    import fsspec  # object stores (s3fs, adlfs) are optional extras

    # fsspec caches filesystems by these arguments, so a changed environment gets a filesystem of its own.
    return fsspec.core.url_to_fs(url, **(storage_options(url) or {}))


def _url_folder(base: str) -> str:
    """``base`` without trailing ``/``, except the account root ``az://`` (whose ``//`` is the scheme's)."""
    return base if base.endswith("://") else base.rstrip("/")


def join_location(base: Location, *parts: str) -> str | Path:
    """``base/part/...``: a URL (str) for a remote ``base``, else a local Path."""
    if is_remote(base):
        folder = _url_folder(str(base))
        stripped = [part.strip("/") for part in parts]
        return folder + "/".join(stripped) if folder.endswith("://") else "/".join([folder, *stripped])
    return Path(base).joinpath(*parts)


def relative_location(location: Location, base: Location) -> str:
    """``location`` relative to the folder ``base`` (both local or both URLs), ``/``-separated."""
    location, base = str(location), str(base)
    if is_remote(base):
        folder = _url_folder(base)
        prefix = folder if folder.endswith("://") else folder + "/"
        if not location.startswith(prefix):
            raise ValueError(f"{location} is not inside {folder}")
        return location[len(prefix):]
    return Path(location).relative_to(base.rstrip("/")).as_posix()


def location_name(location: Location) -> str:
    """The last segment of a path or URL (``s3://b/runs/x`` -> ``x``)."""
    return posixpath.basename(str(location).rstrip("/"))


def write_atomic(location: Location, payload: bytes) -> None:
    """Write ``payload`` to ``location`` so that readers see the old file or the whole new one.

    Local: a temporary sibling, fsynced, then renamed over the target. URL: one upload of the whole object
    (S3: one PUT; Azure: one Put Blob, or staged blocks committed by one Put Block List for a large one).
    """
    if is_remote(location):
        fs, path = filesystem(str(location))
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
        fs, path = filesystem(str(location))
        return fs.cat_file(path)
    return Path(location).read_bytes()


def is_file(location: Location) -> bool:
    """True when a local file or remote object exists at ``location``."""
    if is_remote(location):
        fs, path = filesystem(str(location))
        return fs.isfile(path)
    return Path(location).is_file()


def read_range(location: Location, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the local file or remote object at ``location`` (one ranged GET on an object
    store); a short read is an input error naming it."""
    if is_remote(location):
        fs, path = filesystem(str(location))
        data = fs.cat_file(path, start=start, end=end)
    else:
        with open(location, "rb") as handle:
            handle.seek(start)
            data = handle.read(end - start)
    if len(data) != end - start:
        raise PredictdInputError(str(location), f"bytes {start}-{end}", f"only {len(data)} bytes could be read: "
                                                                        "the file is incomplete")
    return data


def upload_file(file: str | Path, location: str) -> None:
    """Upload the local ``file`` as the object at the URL ``location``: one complete upload, visible only whole."""
    fs, path = filesystem(location)
    fs.put_file(str(file), path)


def remove_folder(location: Location) -> None:
    """Delete the folder ``location`` (local or under a URL) and everything in it; gone already: nothing to do."""
    if is_remote(location):
        fs, path = filesystem(str(location))
        try:
            fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
        return
    shutil.rmtree(location, ignore_errors=True)


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
            for file in sorted(work.iterdir()):
                upload_file(file, str(join_location(location, file.name)))
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


def _account_rooted(url: str) -> bool:
    """True for ``az://C/P`` and ``abfs://C/P``: URLs whose root is the storage account and whose first
    segment is a container (a folder of that root), not a host; False for ``abfs://C@ACCOUNT.../P``."""
    return url.startswith(AZURE_SCHEMES) and "@" not in urlsplit(url).netloc


def _split_account_rooted(url: str) -> tuple[str, str]:
    """``az://configs/a.yaml`` -> (``az``, ``/configs/a.yaml``): the container joins the path."""
    parts = urlsplit(url)
    return parts.scheme, "/" + f"{parts.netloc}{parts.path}".strip("/")


def parent_location(location: str) -> str:
    """The folder of a file: an absolute local directory, or the URL up to its last ``/``.

    For ``az://CONTAINER/NAME`` the folder of a blob at the top of a container is the container
    (``az://configs``), and the folder of a container the account (``az://``).
    """
    if _account_rooted(location):
        scheme, path = _split_account_rooted(location)
        return f"{scheme}://{posixpath.dirname(path).lstrip('/')}"
    if is_remote(location):
        parts = urlsplit(location)
        return urlunsplit(parts._replace(path=posixpath.dirname(parts.path) or "/", query="", fragment=""))
    return str(Path(location).resolve().parent)


def resolve_location(base: str, value: str | None) -> str | None:
    """``value`` as an absolute location: URLs and absolute paths as they are, relative ones joined to the
    folder ``base`` (a local directory or a URL; ``..`` may climb within a bucket, never above it).

    ``az://`` (and ``abfs://`` without an ``@ACCOUNT`` host) is rooted at the storage account: ``..`` may
    climb out of a container into another one of the same account (``az://configs`` + ``../data/t.tsv`` is
    ``az://data/t.tsv``), never above the account.
    """
    if value is None or is_remote(value):
        return value
    if is_remote(base):
        if value.startswith("/"):
            return value
        if _account_rooted(base):
            scheme, path = _split_account_rooted(base)
            return f"{scheme}://{posixpath.normpath(posixpath.join(path, value)).lstrip('/')}"
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
