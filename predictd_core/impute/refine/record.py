"""``OUTPUT/refinement.json``: how a run's refinement stage was fitted, for the report and the manifest."""

from __future__ import annotations

import json
import math
from pathlib import Path

from predictd_core.config import RunConfig
from predictd_core.errors import PredictdInputError
from predictd_core.impute.refine.stage import Refinement
from predictd_core.io import is_file, join_location, read_bytes, write_atomic

REFINEMENT_FILE = "refinement.json"


def refinement_path(config: RunConfig) -> str | Path:
    """``OUTPUT/refinement.json``: how the run's refinement stage was fitted."""
    return join_location(config.output, REFINEMENT_FILE)


def write_refinement(config: RunConfig, refinement: Refinement) -> str | Path:
    """``OUTPUT/refinement.json`` = ``{"refiners": refinement.record()}``, atomically; a measure that is not
    finite (NaN on a flat track, a -inf smallest gain) is written as null, so any JSON reader takes the file."""
    path = refinement_path(config)
    document = {"refiners": _finite_or_null(refinement.record())}
    write_atomic(path, json.dumps(document, indent=2, allow_nan=False).encode())
    return path


def _finite_or_null(value):
    """``value`` (JSON-ready lists, dicts and scalars) with every non-finite float replaced by None."""
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_refinement(config: RunConfig) -> list[dict] | None:
    """The refiners of ``OUTPUT/refinement.json`` (:func:`write_refinement`), or None when the run does not
    refine or no imputation wrote the file. A file left by an earlier run that refined is ignored when this
    config does not refine: its imputation replaced the tracks without rewriting the file."""
    path = refinement_path(config)
    if not config.model.refine.enabled or not is_file(path):
        return None
    try:
        refiners = json.loads(read_bytes(path))["refiners"]
    except (ValueError, KeyError, TypeError) as error:
        raise PredictdInputError(path, "refiners", f"not a refinement record: {error}") from None
    if not isinstance(refiners, list):
        raise PredictdInputError(path, "refiners", "not a list of refiners")
    return refiners
