"""The benchmark's outputs: per-target rows (TSV) and the method x measure table (markdown).

Both are written atomically (:func:`predictd_core.io.write_atomic`), the TSV first and the table last,
so a table on disk always has its complete rows beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from predictd_core.evaluate.tables import measure_names
from predictd_core.io import write_atomic
from predictd_core.model.measures import lower_is_better

ROWS_FILE = "per_target.tsv"
TABLE_FILE = "accuracy.md"


@dataclass(frozen=True)
class Timing:
    """A method's cost over the whole hold-out: wall seconds and CPU seconds (its own and its children's)."""

    wall_s: float
    cpu_s: float


def per_target_tsv(rows: list[dict]) -> str:
    """The rows as TSV: method, cell_type, assay, n_bins, then the measures; floats as ``.6g``."""
    frame = pd.DataFrame(rows, columns=["method", "cell_type", "assay", "n_bins", *measure_names(rows)])
    return frame.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="nan")


def mean_table(rows: list[dict], timings: dict[str, Timing]) -> pd.DataFrame:
    """Per method (in the order of ``timings``): every measure's mean over its targets, the number of
    targets, and the wall and CPU seconds."""
    measures = measure_names(rows)
    frame = pd.DataFrame(rows)
    means = frame.groupby("method", sort=False)[measures].mean()
    means.insert(0, "targets", frame.groupby("method", sort=False).size())
    means["wall s"] = pd.Series({method: timing.wall_s for method, timing in timings.items()})
    means["CPU s"] = pd.Series({method: timing.cpu_s for method, timing in timings.items()})
    return means.reindex(list(timings))


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` (from :func:`mean_table`) as a markdown table: measures to 4 decimals, each header saying
    which way is better (the MSEs down, the rest up); target counts and seconds as whole numbers."""
    whole = ("targets", "wall s", "CPU s")

    def header(column: str) -> str:
        return column if column in whole else f"{column} {'↓' if lower_is_better(column) else '↑'}"

    def cell(column: str, value: float) -> str:
        return f"{value:.0f}" if column in whole else f"{value:.4f}"

    headers = ["method", *map(header, table.columns)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for method, values in table.iterrows():
        lines.append("| " + " | ".join([str(method), *(cell(c, v) for c, v in values.items())]) + " |")
    return "\n".join(lines) + "\n"


def write_results(out: Path, rows: list[dict], timings: dict[str, Timing], notes: list[str]) -> tuple[Path, Path]:
    """Write ``out/per_target.tsv`` then ``out/accuracy.md`` (``notes`` as lines above the table)."""
    rows_path, table_path = Path(out) / ROWS_FILE, Path(out) / TABLE_FILE
    write_atomic(rows_path, per_target_tsv(rows).encode())
    text = "".join(f"{note}\n" for note in notes) + "\n" + markdown_table(mean_table(rows, timings))
    write_atomic(table_path, text.encode())
    return rows_path, table_path
