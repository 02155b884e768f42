"""The decoded-chunk cache of the Spark engine's executors.

Decoding a chunk (zarr, blosc-zstd) costs about half of its ALS compute, so the sweeps keep decoded
chunks between passes in a cache on each executor's local disk (Spark's own local folder, removed when
Spark stops): one file of raw float32 per chunk, read back in a few tens of milliseconds from the page
cache. The cache is per host, not per Python worker, because Spark hands a partition to whichever idle
Python worker comes first, so chunk ``k`` meets a different worker from one sweep to the next; a file
serves them all and holds each chunk once. It is bounded by a byte budget
(:data:`CHUNK_CACHE_CONF`, or half of the host's memory or free disk, whichever is less), evicting
the least recently used chunks; its pages belong to the kernel's page cache, which gives them back
under memory pressure instead of failing. Entries are keyed by the store's path and identity (its
metadata files' size, inode and modification time or ETag), so a store rewritten under the same path
is read afresh.

It runs inside Spark's Python workers and imports nothing of Spark.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np

from predictd_core.errors import PredictdInputError
from predictd_core.engine.base import task_local_folder
from predictd_core.io import filesystem, is_remote
from predictd_core.store.signal_store import read_signal_rows

# Spark setting (``engine.spark_conf``) for the decoded-chunk cache's budget per host, in bytes ("8g" style
# suffixes allowed); 0 turns the cache off. Unset: half of the host's memory or free disk, whichever is less.
CHUNK_CACHE_CONF = "spark.predictd.chunkCacheBytes"
AUTOMATIC_CACHE_SHARE = 0.5
_CACHE_FOLDER = "predictd-chunks"
_automatic_budget: int | None = None  # a Python worker's budget, worked out at its first insertion


def parse_bytes(text: str, field: str = CHUNK_CACHE_CONF) -> int:
    """Bytes from ``"123"``, ``"512m"``, ``"8g"`` (k, m, g, t: powers of 1024, as Spark's sizes)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)b?\s*", str(text).lower())
    if match is None:
        raise PredictdInputError("engine.spark_conf", field, f"expected a size in bytes such as 8g, not {text!r}")
    return int(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " ")


def store_identity(path: str) -> str:
    """What tells this store apart from another written later at the same ``path``: the size, inode and
    modification time (or an object store's ETag) of its root and signal metadata files, which every
    write of a store rewrites."""
    fs, root = filesystem(str(path))
    marks = []
    for name in ("zarr.json", "signal/zarr.json"):
        info = fs.info(f"{root.rstrip('/')}/{name}")
        marks.append([str(info.get(key)) for key in ("size", "ino", "mtime", "created", "LastModified",
                                                      "last_modified", "ETag", "etag")])
    return hashlib.sha1(repr((str(path), is_remote(str(path)), marks)).encode()).hexdigest()


def _cache_folder() -> Path | None:
    """This executor's cache folder, inside the local folder Spark gives its Python workers (None outside Spark)."""
    local = task_local_folder()
    if local is None:
        return None
    folder = Path(local) / _CACHE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _host_budget(folder: Path) -> int:
    """The automatic budget: :data:`AUTOMATIC_CACHE_SHARE` of the memory this host (or its cgroup) has,
    or of the disk the cache can use, whichever is less (beyond memory, the page cache cannot keep it)."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            memory = min(memory, int(text))
    disk = shutil.disk_usage(folder).free + sum(entry.stat().st_size for entry in os.scandir(folder))
    return int(AUTOMATIC_CACHE_SHARE * min(memory, disk))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reserve(folder: Path, name: Path, size: int, budget: int) -> Path | None:
    """Under the folder's lock, evict least recently used chunks until ``size`` more bytes fit the budget and
    reserve them with a partial file (counted by the next writer, so workers writing at once stay in budget)."""
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries, total = [], 0
        for entry in os.scandir(folder):
            if entry.name == ".lock":
                continue
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            if entry.name.endswith(".partial"):
                if not _pid_alive(int(entry.name.rsplit(".", 2)[1])):  # a writer that died mid-write
                    Path(entry.path).unlink(missing_ok=True)
                    continue
            else:
                entries.append((stat.st_mtime_ns, stat.st_size, entry.path))
            total += stat.st_size
        for _, bytes_, path in sorted(entries):
            if total + size <= budget:
                break
            Path(path).unlink(missing_ok=True)  # a reader holding it open keeps reading it
            total -= bytes_
        if total + size > budget:
            return None
        partial = name.with_name(f"{name.stem}.{os.getpid()}.partial")
        with open(partial, "wb") as reserved:
            reserved.truncate(size)
        return partial


def _insert(folder: Path, name: Path, signal: np.ndarray, budget: int | None) -> None:
    """Keep ``signal`` as ``name`` if it fits the budget; written under a partial name, then renamed, so a
    reader sees a whole file or none. A failed write (disk full) only loses the cache entry."""
    global _automatic_budget
    if budget is None:
        if _automatic_budget is None:
            _automatic_budget = _host_budget(folder)
        budget = _automatic_budget
    size = signal.nbytes + 4096  # an upper bound on the .npy header
    if size > budget:
        return
    partial = _reserve(folder, name, size, budget)
    if partial is None:
        return
    try:
        with open(partial, "r+b") as file:
            np.lib.format.write_array(file, np.ascontiguousarray(signal), allow_pickle=False)
            file.truncate()
        os.replace(partial, name)
    except OSError:
        partial.unlink(missing_ok=True)


def read_cached_chunk(path: str, identity: str, lo: int, hi: int, budget: int | None, insert: bool
                      ) -> tuple[np.ndarray, bool]:
    """Signal rows ``[lo, hi)`` of the store at ``path``, from this executor's chunk cache when it holds them.

    Runs in a Spark task. Returns the rows (a private, writable array, as a read from the store) and whether
    the cache served them. On a miss the rows are read from the store and, if ``insert``, kept within
    ``budget`` bytes for the host (None: the automatic budget; 0: no cache).
    """
    folder = None if budget == 0 else _cache_folder()
    if folder is None:
        return read_signal_rows(path, lo, hi), False
    name = folder / f"{hashlib.sha1(f'{path}|{identity}|{lo}|{hi}'.encode()).hexdigest()}.npy"
    try:
        signal = np.load(name, allow_pickle=False)
        os.utime(name)  # most recently used: the last to be evicted
        return signal, True
    except (OSError, ValueError):  # absent, or evicted between the two calls
        pass
    signal = read_signal_rows(path, lo, hi)
    if insert:
        _insert(folder, name, signal, budget)
    return signal, False
