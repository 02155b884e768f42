"""predictd: impute missing epigenomics experiments with PREDICTD's tensor model.

The names a notebook needs, beside the ``predictd`` command line:

- :func:`simulate_compendium` (``predictd simulate``) writes a compendium with a planted truth, and
  :func:`write_example_config` a run config for it;
- :func:`load_config` reads a run YAML into a :class:`RunConfig`, which can also be built in code;
- :func:`run_cv` (``predictd cv``) and :func:`run_all` (``predictd run``) run the whole pipeline and return
  :class:`RunOutputs`: one row of measures per scored experiment, the files written, the fitted models;
- :class:`Predictd`, the estimator the runs fit, fits on a signal store or loads a saved model.

Each keeps the name it has in its module, so the library has one name per function. Every one has a
docstring example that runs (tests/unit/test_public_api.py runs them); README.md's "From Python" is a
whole session.

Importing the package loads none of them: each loads on first use (PEP 562), so code that needs only a
corner of it (the cloud handlers import ``predictd_core.cloud``) does not load numpy, zarr or Spark.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports each on first use
    from predictd_core.config import RunConfig, load_config
    from predictd_core.pipeline import RunOutputs, run_all, run_cv
    from predictd_core.simulate import simulate_compendium, write_example_config
    from predictd_core.train.estimator import Predictd

__all__ = ["Predictd", "RunConfig", "RunOutputs", "load_config", "run_all", "run_cv", "simulate_compendium",
           "write_example_config"]

# Where each name of __all__ lives (the TYPE_CHECKING imports above, for the import at run time).
_HOMES = {
    "Predictd": "predictd_core.train.estimator",
    "RunConfig": "predictd_core.config",
    "RunOutputs": "predictd_core.pipeline",
    "load_config": "predictd_core.config",
    "run_all": "predictd_core.pipeline",
    "run_cv": "predictd_core.pipeline",
    "simulate_compendium": "predictd_core.simulate",
    "write_example_config": "predictd_core.simulate",
}


def __getattr__(name: str) -> object:
    """Import a name of ``__all__`` from its module the first time it is asked for (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups find it without calling __getattr__
    return value


def __dir__() -> list[str]:
    """The module's attributes with the names of ``__all__`` not yet loaded."""
    return sorted({*globals(), *__all__})
