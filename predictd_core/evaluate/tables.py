"""The metric files of a run: one row per scored experiment, and means with win counts beside the baseline.

A row is a dict: ``cell_type``, ``assay``, ``kind`` (``"test-fold"``: imputed out of sample by its
test fold's models; ``"holdout"``: a configured holdout target), ``n_bins`` (int), predictd's
measures by name (``"MSEglobal"``, ...) and the baseline's as ``"baseline_MSEglobal"``, ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from predictd_core.io import join_location, write_atomic
from predictd_core.model.measures import MEASURES, REGION_MEASURES, lower_is_better

ID_COLUMNS = ("cell_type", "assay", "kind", "n_bins")
SUMMARY_COLUMNS = ("scope", "measure", "n", "predictd_mean", "baseline_mean", "wins", "losses", "ties")
METRIC_FILES = ("metrics.tsv", "metrics.parquet", "summary.tsv")
ALL_MEASURES = (*MEASURES, *REGION_MEASURES.values())


def measure_names(rows: list[dict]) -> list[str]:
    """The measures present in any row: :data:`MEASURES` order, then the region MSEs.

    Raises
    ------
    ValueError
        ``rows`` is empty.
    """
    if not rows:
        raise ValueError("no scored experiments: a metrics table needs at least one row")
    present = set().union(*rows)
    return [measure for measure in ALL_MEASURES if measure in present]


def metrics_tsv(rows: list[dict]) -> bytes:
    """The metrics table as TSV bytes: a header, then one line per scored experiment.

    Columns are :data:`ID_COLUMNS`, predictd's measures (:func:`measure_names`), then the baseline's
    as ``baseline_<measure>``. Floats are written as ``.6g``, and a measure a row lacks as ``nan``.
    """
    return _tsv(_metric_table(rows))


def metrics_parquet(rows: list[dict]) -> bytes:
    """The columns of :func:`metrics_tsv` as Parquet: strings, ``n_bins`` int64, measures float64."""
    types = {"cell_type": pa.string(), "assay": pa.string(), "kind": pa.string(), "n_bins": pa.int64()}
    table = pa.table({column: pa.array(values, types.get(column, pa.float64()))
                      for column, values in _metric_table(rows).items()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _metric_table(rows: list[dict]) -> dict[str, list]:
    """The metrics table column by column."""
    names = measure_names(rows)
    table = {column: [row[column] for row in rows] for column in ID_COLUMNS}
    for column in (*names, *(f"baseline_{name}" for name in names)):
        table[column] = _values(rows, column).tolist()
    return table


def _values(rows: list[dict], measure: str) -> np.ndarray:
    """One measure over ``rows`` as float64; NaN where a row lacks it (a region MSE without its BED)."""
    return np.array([row.get(measure, np.nan) for row in rows], dtype=np.float64)


def summary_rows(rows: list[dict]) -> list[dict]:
    """Means and win counts of predictd against the baseline, over all experiments and per assay.

    Parameters
    ----------
    rows : list of dict
        Metric rows (see the module docstring); at least one.

    Returns
    -------
    list of dict
        For each scope (``"all"``, then each assay in order of first appearance) and each measure of
        :func:`measure_names`: ``scope``, ``measure``, ``n`` (experiments where both values are
        finite), ``predictd_mean`` and ``baseline_mean`` over those ``n`` (NaN when ``n`` is 0),
        ``wins`` (predictd strictly better: lower for the MSE family, higher otherwise), ``losses``
        and ``ties``.
    """
    names = measure_names(rows)
    scopes = {"all": rows}
    for assay in dict.fromkeys(row["assay"] for row in rows):
        scopes[assay] = [row for row in rows if row["assay"] == assay]
    return [{"scope": scope, "measure": name, **_compare(name, members)}
            for scope, members in scopes.items() for name in names]


def _compare(measure: str, rows: list[dict]) -> dict:
    """``n``, both means and the win/loss/tie counts of one measure over ``rows``."""
    predictd, baseline = _values(rows, measure), _values(rows, f"baseline_{measure}")
    both = np.isfinite(predictd) & np.isfinite(baseline)
    predictd, baseline = predictd[both], baseline[both]
    better, worse = predictd < baseline, predictd > baseline
    if not lower_is_better(measure):
        better, worse = worse, better
    n = int(both.sum())
    return {"n": n,
            "predictd_mean": float(predictd.mean()) if n else float("nan"),
            "baseline_mean": float(baseline.mean()) if n else float("nan"),
            "wins": int(better.sum()), "losses": int(worse.sum()), "ties": int((predictd == baseline).sum())}


def summary_tsv(summary: list[dict]) -> bytes:
    """:func:`summary_rows` as TSV bytes, columns :data:`SUMMARY_COLUMNS`; floats as ``.6g``."""
    return _tsv({column: [row[column] for row in summary] for column in SUMMARY_COLUMNS})


def write_metrics(folder: str | Path, rows: list[dict]) -> list[str | Path]:
    """Write ``metrics.tsv``, ``metrics.parquet`` and ``summary.tsv`` (:data:`METRIC_FILES`) into ``folder``
    (local or a URL).

    Each file is written atomically, so a reader sees the previous file or the whole new one.

    Returns
    -------
    list of Path (local) or str (URL)
        The three files, in :data:`METRIC_FILES` order.

    Raises
    ------
    ValueError
        ``rows`` is empty.
    """
    payloads = (metrics_tsv(rows), metrics_parquet(rows), summary_tsv(summary_rows(rows)))
    locations = [join_location(folder, name) for name in METRIC_FILES]
    for location, payload in zip(locations, payloads):
        write_atomic(location, payload)
    return locations


def _tsv(table: dict[str, list]) -> bytes:
    """Header and one line per row of a column-wise table; floats as ``.6g``."""
    lines = ["\t".join(table)]
    for values in zip(*table.values()):
        lines.append("\t".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values))
    return ("\n".join(lines) + "\n").encode()
