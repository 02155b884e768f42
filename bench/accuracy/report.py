"""The benchmark's outputs: per-target rows and margins (TSV) and the tables of accuracy.md (markdown).

All are written atomically (:func:`predictd_core.io.write_atomic`), the TSVs first and the markdown
last, so a table on disk always has its complete rows beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from predictd_core.evaluate.tables import measure_names
from predictd_core.io import write_atomic
from predictd_core.model.measures import lower_is_better

from bench.accuracy.margins import ALL_SQUARES, MARGIN_COLUMNS

ROWS_FILE = "per_target.tsv"
MARGINS_FILE = "margins.tsv"
TABLE_FILE = "accuracy.md"
WHOLE_COLUMNS = ("targets", "squares", "wall s", "CPU s")


@dataclass(frozen=True)
class Timing:
    """A method's cost over a hold-out: wall seconds and CPU seconds (its own and its children's)."""

    wall_s: float
    cpu_s: float


def per_target_tsv(rows: list[dict]) -> str:
    """The rows as TSV: square (when the rows have one), method, cell_type, assay, n_bins, then the
    measures; floats as ``.6g``."""
    ids = [*(["square"] if "square" in rows[0] else []), "method", "cell_type", "assay", "n_bins"]
    frame = pd.DataFrame(rows, columns=[*ids, *measure_names(rows)])
    return frame.to_csv(sep="\t", index=False, float_format="%.6g", na_rep="nan")


def mean_table(rows: list[dict], timings: Mapping[str, Timing]) -> pd.DataFrame:
    """Per method (in the order of ``timings``): every measure's mean over its targets, the number of
    targets, and the wall and CPU seconds."""
    measures = measure_names(rows)
    frame = pd.DataFrame(rows)
    means = frame.groupby("method", sort=False)[measures].mean()
    means.insert(0, "targets", frame.groupby("method", sort=False).size())
    means["wall s"] = pd.Series({method: timing.wall_s for method, timing in timings.items()})
    means["CPU s"] = pd.Series({method: timing.cpu_s for method, timing in timings.items()})
    return means.reindex(list(timings))


def square_means(rows: list[dict]) -> pd.DataFrame:
    """Every measure's mean over each square's targets, indexed by (square, method) in the rows' order."""
    return pd.DataFrame(rows).groupby(["square", "method"], sort=False)[measure_names(rows)].mean()


def over_squares_table(rows: list[dict], timings: Mapping[str, Mapping[str, Timing]]) -> pd.DataFrame:
    """Per method: the mean over squares of its square means, the number of squares, and the wall and CPU
    seconds summed over the squares (``timings``: square -> method -> Timing)."""
    per_square = square_means(rows)
    means = per_square.groupby(level="method", sort=False).mean()
    means.insert(0, "squares", per_square.groupby(level="method", sort=False).size())
    methods = list(means.index)
    means["wall s"] = [sum(by_method[m].wall_s for by_method in timings.values() if m in by_method) for m in methods]
    means["CPU s"] = [sum(by_method[m].cpu_s for by_method in timings.values() if m in by_method) for m in methods]
    return means


def worst_square_table(rows: list[dict]) -> pd.DataFrame:
    """Per method and measure, the worst square mean (highest MSE, lowest of the rest) and its square,
    as text ``0.1234 (cyclic-1)``; a square where the measure is undefined (a constant imputation has no
    correlation) is the worst, ``undefined (cyclic-1)``."""
    per_square = square_means(rows)
    table = {}
    for measure in per_square.columns:
        values = per_square[measure].unstack("square")
        table[measure] = {}
        for method, by_square in values.iterrows():
            if by_square.isna().any():
                table[measure][method] = f"undefined ({by_square.index[by_square.isna()][0]})"
            else:
                square = by_square.idxmax() if lower_is_better(measure) else by_square.idxmin()
                table[measure][method] = f"{by_square[square]:.4f} ({square})"
    methods = list(dict.fromkeys(per_square.index.get_level_values("method")))
    return pd.DataFrame(table).reindex(methods)


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a markdown table: measures to 4 decimals, each header saying which way is better (the
    MSEs down, the rest up); counts and seconds as whole numbers; text cells as they are."""

    def header(column: str) -> str:
        return column if column in WHOLE_COLUMNS else f"{column} {'↓' if lower_is_better(column) else '↑'}"

    def cell(column: str, value) -> str:
        if isinstance(value, str):
            return value
        return f"{value:.0f}" if column in WHOLE_COLUMNS else f"{value:.4f}"

    headers = [table.index.name or "method", *map(header, table.columns)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for method, values in table.iterrows():
        lines.append("| " + " | ".join([str(method), *(cell(c, v) for c, v in values.items())]) + " |")
    return "\n".join(lines) + "\n"


def margins_tsv(margins: list[dict]) -> str:
    """The margin rows (:func:`bench.accuracy.margins.margin_rows`) as TSV; floats as ``.6g``."""
    return pd.DataFrame(margins, columns=list(MARGIN_COLUMNS)).to_csv(sep="\t", index=False, float_format="%.6g",
                                                                      na_rep="nan")


def margins_table(margins: list[dict], scope: str) -> pd.DataFrame:
    """One scope's margins as text, peer x measure: ``difference [low, high]`` and the verdict when it
    is a win or a loss."""
    cells: dict[str, dict[str, str]] = {}
    for row in margins:
        if row["scope"] == scope:
            mark = f" {row['verdict']}" if row["verdict"] in ("win", "loss") else ""
            cells.setdefault(row["measure"], {})[row["peer"]] = \
                f"{row['difference']:+.4f} [{row['low']:+.4f}, {row['high']:+.4f}]{mark}"
    table = pd.DataFrame(cells)
    references = {row["reference"] for row in margins if row["scope"] == scope}
    table.index.name = f"{references.pop() if len(references) == 1 else 'predictd'} minus"
    return table


def verdict_counts(margins: list[dict], scope: str) -> str:
    """``win a, tie b, loss c`` over one scope's (peer, measure) margins."""
    verdicts = [row["verdict"] for row in margins if row["scope"] == scope]
    return ", ".join(f"{verdict} {verdicts.count(verdict)}" for verdict in ("win", "tie", "loss", "n/a")
                     if verdict in verdicts or verdict != "n/a")


def accuracy_markdown(rows: list[dict], timings: Mapping[str, Mapping[str, Timing]], notes: Sequence[str],
                      headings: Mapping[str, str], margins: list[dict] | None = None,
                      margin_note: str = "") -> str:
    """accuracy.md: ``notes``; the mean over squares; the worst square per measure; the margins over all
    squares; then each square (``headings``: square -> its heading) with its means and margins."""
    parts = ["".join(f"{note}\n" for note in notes),
             f"## Mean over the {len(headings)} square(s)\n\n" + markdown_table(over_squares_table(rows, timings)),
             "## Worst square per measure\n\n" + markdown_table(worst_square_table(rows))]
    if margins:
        parts.append(f"## Margins over all squares\n\n{margin_note}\n\n({verdict_counts(margins, ALL_SQUARES)})\n\n"
                     + markdown_table(margins_table(margins, ALL_SQUARES)))
    for square, heading in headings.items():
        square_rows = [row for row in rows if row["square"] == square]
        text = f"## {heading}\n\n" + markdown_table(mean_table(square_rows, timings[square]))
        if margins:
            text += (f"\nMargins ({verdict_counts(margins, square)}):\n\n"
                     + markdown_table(margins_table(margins, square)))
        parts.append(text)
    return "\n".join(parts)


def write_results(out: Path, rows: list[dict], markdown: str, margins: list[dict] | None = None) -> dict[str, Path]:
    """Write ``out/per_target.tsv``, ``out/margins.tsv`` (when there are margins) and last
    ``out/accuracy.md`` (``markdown``); their paths by file name."""
    out = Path(out)
    written = {ROWS_FILE: out / ROWS_FILE}
    write_atomic(written[ROWS_FILE], per_target_tsv(rows).encode())
    if margins:
        written[MARGINS_FILE] = out / MARGINS_FILE
        write_atomic(written[MARGINS_FILE], margins_tsv(margins).encode())
    else:  # an earlier run's margins would sit beside tables they do not belong to
        (out / MARGINS_FILE).unlink(missing_ok=True)
    written[TABLE_FILE] = out / TABLE_FILE
    write_atomic(written[TABLE_FILE], markdown.encode())
    return written
