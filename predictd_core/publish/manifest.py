"""``OUTPUT/manifest.json``: what a finished run is made of, written last, so its presence says the run's
outputs are complete."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

from predictd_core.config import RunConfig
from predictd_core.evaluate.scoring import Evaluation
from predictd_core.io import join_location, relative_location, write_atomic
from predictd_core.store.signal_store import SignalStore
from predictd_core.train.estimator import Predictd

MANIFEST_FILE = "manifest.json"
VERSIONED_PACKAGES = ("predictd", "numpy", "pyspark", "zarr", "pyBigWig", "pydantic")


def package_versions() -> dict[str, str]:
    """The installed version of each of :data:`VERSIONED_PACKAGES` (``"not installed"`` when absent), and
    Python's."""
    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["python"] = platform.python_version()
    return found


def write_manifest(config: RunConfig, store: SignalStore, models: dict[str, Predictd], outputs: list[str | Path],
                   evaluation: Evaluation) -> str | Path:
    """``OUTPUT/manifest.json``, written last: config hash, versions, inputs, models, outputs (relative to
    OUTPUT), metrics. Its presence says the run's outputs are complete."""
    manifest = {
        "config_sha256": config.digest(),
        "training_sha256": config.training_digest(),
        "config": config.model_dump(),
        "versions": package_versions(),
        "inputs": [{"cell_type": e.cell_type, "assay": e.assay, "path": e.path} for e in store.experiments],
        "store": config.store_path,
        "models": [{"name": name, "rank": model.rank_, "solver": model.settings.solver, "seed": model.settings.seed,
                    "best_iteration": model.best_iteration_, "iterations": len(model.history_)}
                   for name, model in models.items()],
        "outputs": sorted(relative_location(location, config.output) for location in outputs),
        "metrics": evaluation.rows,
    }
    path = join_location(config.output, MANIFEST_FILE)
    write_atomic(path, json.dumps(manifest, indent=2, default=float).encode())
    return path
