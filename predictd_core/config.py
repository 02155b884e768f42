"""The run configuration: one YAML file, validated by pydantic, paths relative to the file.

Example::

    tracks: tracks.tsv            # TSV: cell_type, assay, path (local, s3:// or https://)
    chrom_sizes: chrom.sizes
    regions: null                 # optional BED: model only these regions
    bin_size: 25
    holdout: [E065:H3K4me3]       # removed from training, imputed and scored
    model: {rank: 100, solver: als, penalties: {rc: 3.66, ra: 1.23e-7, ri2: 2.9}}
    engine: {master: "local[*]"}
    cv: {n_test: 5, n_valid: 8}   # predictd cv: one model per (test fold, validation fold)
    evaluation: {promoters: prom.bed, genes: genes.bed, enhancers: enh.bed}  # optional region MSEs
    output: output                # folder for store, models, imputed/, metrics, report.html, manifest.json
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from predictd_core.errors import PredictdInputError
from predictd_core.model.settings import ModelSettings
from predictd_core.io import join_location, parent_location, read_text, resolve_location
from predictd_core.tracks.table import ExperimentNamesError, split_experiment_names

# The store's default chunk (65,536 bins: ~0.7 s of ALS per Roadmap-shaped chunk, a few hundred MB in
# memory). Defined here so that importing the config needs only pydantic and PyYAML: the Lambda handlers do.
DEFAULT_CHUNK_BINS = 65_536

# ``engine.master`` value for jobs launched by spark-submit (the cloud jobs): take its master, set none.
SPARK_SUBMIT_MASTER = "spark-submit"
# A spawned process takes ~0.5 s to start (numpy, zarr, pyBigWig); a bigWig value ~300 ns to read or write.
PARALLEL_MIN_VALUES = 4_000_000


class EngineSettings(BaseModel):
    """Where the chunk computations run: Spark (any master) or plain numpy in this process.

    ``master: spark-submit`` is for jobs started by ``spark-submit`` (EMR Serverless, EMR on EC2 steps):
    the session takes the master and settings spark-submit was given instead of setting its own.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["spark", "numpy"] = "spark"
    master: str = Field("local[*]", description=(
        f"Spark master URL, or {SPARK_SUBMIT_MASTER!r}: keep the master spark-submit gave (EMR, any cluster "
        "launched by spark-submit; the session then sets no master of its own); ignored by the numpy engine"))
    spark_conf: dict[str, str] = Field(default_factory=dict, description="extra Spark settings")
    processes: int | None = Field(None, ge=1, description=(
        "processes on the driver that ingest tracks and write imputed bigWigs side by side (pyBigWig holds "
        "the GIL), and on the numpy engine also compute the imputed chunks side by side (each with its share "
        "of the BLAS threads); default: the CPUs this process may use"))

    def processes_for(self, values: int) -> int:
        """Processes for a job of ``values`` bigWig values (:func:`parallel_processes` with ``processes``)."""
        return parallel_processes(values, self.processes)


def parallel_processes(values: int, requested: int | None = None) -> int:
    """Processes for a job of ``values`` bigWig values read or written: ``requested`` (default the CPUs this
    process may use), or 1 below :data:`PARALLEL_MIN_VALUES`, where starting them costs more than they save."""
    if values < PARALLEL_MIN_VALUES:
        return 1
    return requested or len(os.sched_getaffinity(0))


class CrossValidationSettings(BaseModel):
    """PREDICTD's scheme: test folds x validation folds, one model each, ensembled per test fold."""

    model_config = ConfigDict(extra="forbid")

    n_test: int = Field(5, ge=1, description="test folds; 1: the holdout targets are the test set, and the "
                        "n_valid models, each validating on one fold of the rest, impute every pair together")
    n_valid: int = Field(8, ge=1, description="validation folds per test fold")
    seed: int = Field(0, description="seed of the fold deal")
    tries: int = Field(1000, ge=1, description="random deals searched before the exact balancing")
    spread: bool = Field(False, description="also write OUTPUT/spread/: per-bin std of the ensemble (arcsinh)")


class CloudSettings(BaseModel):
    """How a cloud run sizes its jobs. One node runs a job as Spark ``local[*]`` (Azure Batch) or with the
    engine's own executors (EMR Serverless); more nodes run each job of ``stages`` as a Spark standalone
    cluster of that many machines (an Azure Batch multi-instance task): the whole-genome steps that
    outgrow one machine."""

    model_config = ConfigDict(extra="forbid")

    nodes: int = Field(1, ge=1, le=100, description="machines per job of `stages` (Azure Batch)")
    stages: list[Literal["prepare", "fold", "finish"]] = Field(
        default_factory=lambda: ["prepare", "fold", "finish"],
        description="the jobs that run on `nodes` machines: prepare (ingest), fold (train), finish (impute)")

    def nodes_for(self, stage: str) -> int:
        """Machines for a job of ``stage``."""
        return self.nodes if stage in self.stages else 1


class EvaluationSettings(BaseModel):
    """Optional BEDs for region MSEs, and where the report draws genome-browser panels."""

    model_config = ConfigDict(extra="forbid")

    promoters: str | None = Field(None, description="BED: MSEprom over the bins it covers")
    genes: str | None = Field(None, description="BED: MSEgene over the bins it covers")
    enhancers: str | None = Field(None, description="BED: MSEenh over the bins it covers")
    browser_regions: list[str] = Field(default_factory=list,
                                       description="'CONTIG:START-END' windows for the report's track panels")

    @field_validator("browser_regions")
    @classmethod
    def _contig_start_end(cls, regions: list[str]) -> list[str]:
        for region in regions:
            parse_region(region)
        return regions

    def region_beds(self) -> dict[str, str]:
        """The BEDs given, keyed as ``model.measures.REGION_MEASURES``."""
        return {name: path for name in ("promoters", "genes", "enhancers")
                if (path := getattr(self, name)) is not None}


def parse_region(region: str) -> tuple[str, int, int]:
    """``"chr1:1000-2000"`` -> ``("chr1", 1000, 2000)``; a ValueError says what is wrong."""
    contig, _, span = region.rpartition(":")
    start, _, end = span.partition("-")
    if not contig or not start.isdigit() or not end.isdigit() or int(start) >= int(end):
        raise ValueError(f"regions are 'CONTIG:START-END' with START < END, got {region!r}")
    return contig, int(start), int(end)


class RunConfig(BaseModel):
    """Everything ``predictd run`` and ``predictd cv`` need: the fields of the run YAML (this module's
    docstring), validated.

    :func:`load_config` reads one from a YAML and resolves its relative paths against the YAML's folder;
    built in code, it takes the same fields as keyword arguments (the nested settings as dicts) and
    leaves relative paths relative to the working directory.

    Examples
    --------
    >>> from predictd_core import RunConfig
    >>> config = RunConfig(tracks="tracks.tsv", chrom_sizes="chrom.sizes", holdout=["E001:H3K4me3"],
    ...                    engine={"kind": "numpy"}, cv={"n_test": 2, "n_valid": 2})
    >>> config.model.solver, config.model.max_iters, config.engine.kind, config.store_path
    ('als', 60, 'numpy', 'output/store.zarr')
    >>> try:
    ...     RunConfig(tracks="tracks.tsv", chrom_sizes="chrom.sizes", holdout=["E001"])
    ... except ValueError as error:
    ...     print(error.errors()[0]["msg"])
    Value error, holdout targets are 'CELL:ASSAY', got 'E001'
    """

    model_config = ConfigDict(extra="forbid")

    tracks: str
    chrom_sizes: str
    regions: str | None = None
    bin_size: int = Field(25, ge=1)
    chunk_bins: int = Field(DEFAULT_CHUNK_BINS, ge=1, description="bins per chunk (I/O unit and Spark partition)")
    holdout: list[str] = Field(default_factory=list)
    model: ModelSettings = ModelSettings()
    engine: EngineSettings = EngineSettings()
    cv: CrossValidationSettings = CrossValidationSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    cloud: CloudSettings = CloudSettings()
    output: str = "output"
    store: str | None = Field(None, description="signal store path; default OUTPUT/store.zarr")
    _source: str = PrivateAttr("config")

    @property
    def source(self) -> str:
        """The YAML this config was read from (``"config"`` when built in code), for error messages."""
        return self._source

    @field_validator("holdout")
    @classmethod
    def _cell_colon_assay(cls, targets: list[str]) -> list[str]:
        try:
            split_experiment_names(targets)
        except ExperimentNamesError as error:
            if error.index is None:
                raise ValueError("holdout lists a target twice") from None
            raise ValueError(f"holdout targets are 'CELL:ASSAY', got {targets[error.index]!r}") from None
        return targets

    @property
    def store_path(self) -> str:
        return self.store or str(join_location(self.output, "store.zarr"))

    def digest(self) -> str:
        """sha256 of the validated config (paths resolved): the identity of a run."""
        return _sha256(self.model_dump())

    def training_digest(self) -> str:
        """sha256 of what a fitted model depends on (data, holdout, model, folds), not of engine or outputs,
        nor of ``model.refine``: the refinement is fitted at imputation, on top of the saved models.

        A fold model whose artifact carries this digest can be reused by a later run of the config.
        """
        return _sha256(self.model_dump(include={"tracks", "chrom_sizes", "regions", "bin_size", "holdout", "model"},
                                       exclude={"model": {"refine"}})
                       | {"cv": self.cv.model_dump(include={"n_test", "n_valid", "seed", "tries"})})


def _sha256(document: dict) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run YAML, local or at a URL (``s3://``, ``https://``); relative paths in it are
    resolved against the YAML's folder.

    Raises
    ------
    PredictdInputError
        Naming the file and the field, for a missing file, bad YAML or an invalid field.

    Examples
    --------
    >>> import tempfile
    >>> from predictd_core import load_config, simulate_compendium, write_example_config
    >>> tmp = tempfile.TemporaryDirectory()
    >>> simulated = simulate_compendium(tmp.name, n_cells=3, n_assays=2, n_bins=100)
    >>> path = write_example_config(simulated.root, holdout=["E001:H3K4me3"])
    >>> config = load_config(path)
    >>> config.holdout, config.model.solver, config.cv.n_test, config.cv.n_valid
    (['E001:H3K4me3'], 'als', 5, 2)
    >>> config.tracks == str(simulated.tracks_tsv)   # relative to the YAML's folder
    True
    >>> _ = path.write_text(path.read_text().replace("bin_size: 25", "bin_size: 0"))
    >>> load_config(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    predictd_core.errors.PredictdInputError: .../run.yaml: bin_size: Input should be greater than or equal to 1 (got 0)
    """
    source = str(path)
    return parse_config(read_text(source, "config", "config file not found"), source)


def parse_config(text: str, source: str) -> RunConfig:
    """Validate the YAML ``text`` of the config at ``source`` (a local path or URL, which names the file in
    errors and anchors relative paths). Shared by the CLI and the cloud handlers, which read the text."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PredictdInputError(source, "yaml", f"not valid YAML: {error}".replace("\n", " ")) from error
    if not isinstance(raw, dict):
        raise PredictdInputError(source, "config", "expected a mapping of fields (tracks, chrom_sizes, ...)")
    try:
        config = RunConfig(**raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "config"
        raise PredictdInputError(source, field, f"{first['msg']} (got {first.get('input')!r})") from None
    base = parent_location(source)
    resolved = {name: resolve_location(base, getattr(config, name))
                for name in ("tracks", "chrom_sizes", "regions", "output", "store")}
    evaluation = config.evaluation.model_copy(
        update={name: resolve_location(base, path) for name, path in config.evaluation.region_beds().items()})
    config = config.model_copy(update={**resolved, "evaluation": evaluation})
    config._source = source
    return config
