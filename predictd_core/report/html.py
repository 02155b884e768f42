"""``report.html``: one self-contained page (inline CSS, figures as data URIs, no external URL).

The page answers, in order: how predictd compares with the baseline overall, per assay and per
experiment; what the imputations look like; how the refinement stage chose its blend; and whether
training converged.
"""

from __future__ import annotations

import base64
import math
import numbers
from html import escape
from pathlib import Path

from predictd_core.io import write_atomic
from predictd_core.model.measures import lower_is_better
from predictd_core.report import figures
from predictd_core.report.data import ReportData, better_side, direction, mean_record, measure_value

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; font-size: 14px;
       color: #222; margin: 24px auto; max-width: 1400px; padding: 0 16px; line-height: 1.45; }
h1 { font-size: 24px; margin-bottom: 4px; }
h2 { font-size: 19px; margin-top: 36px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
code { font-size: 12px; background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
nav a { margin-right: 14px; }
.notes li { margin: 2px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 5px; text-align: right; white-space: nowrap; }
th { background: #f5f5f5; }
th.name, td.name { text-align: left; }
thead th.sub { font-weight: normal; font-size: 11px; color: #555; }
td.better { background: #d9f0d3; font-weight: 600; }
td.pd { border-left: 2px solid #bbb; }
/* The first column (target or assay) stays in view while a wide table scrolls sideways. */
tr > :first-child { position: sticky; left: 0; background: #fff; }
thead tr > :first-child { background: #f5f5f5; }
tbody tr:hover td { background-color: #f7f7fb; }
tbody tr:hover td.better { background: #c7e6bf; }
figure { margin: 14px 0; }
img.figure { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 13px; color: #555; margin-top: 4px; max-width: 1100px; }
.muted { color: #666; }
/* The blend the refinement chose: its row framed, its label bold. */
tr.chosen td { border-top: 2px solid #c9a400; border-bottom: 2px solid #c9a400; }
tr.chosen td.name { font-weight: 600; }
details { margin: 6px 0; }
summary { cursor: pointer; }
"""

# The test reads these two attributes from the rendered DOM: every figure must have decoded.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img.figure");
  var loaded = 0;
  images.forEach(function (img) { if (img.complete && img.naturalWidth > 0) { loaded += 1; } });
  document.body.dataset.figuresLoaded = String(loaded);
  document.body.dataset.figuresTotal = String(images.length);
});
"""

_SECTIONS = (("summary", "Summary"), ("assays", "Per assay"), ("experiments", "Per experiment"),
             ("scatter", "Observed vs imputed"), ("browser", "Genome browser"), ("refinement", "Refinement"),
             ("convergence", "Convergence"), ("factors", "Factors"))


def render_report(data: ReportData) -> str:
    """The whole report page for ``data``.

    Parameters
    ----------
    data : ReportData

    Returns
    -------
    str
        A self-contained HTML document: every figure is an inline PNG, no external resource.
    """
    body = "\n".join((_header(data), _summary_section(data), _assay_section(data), _experiment_section(data),
                      _scatter_section(data), _browser_section(data), _refinement_section(data),
                      _convergence_section(data), _factor_section(data)))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(data.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n"
            f"<script>{_SCRIPT}</script>\n</body>\n</html>\n")


def write_report(path: str | Path, data: ReportData) -> str | Path:
    """Render ``data`` and write it to ``path`` atomically (readers see the old page or the new one).

    Parameters
    ----------
    path : str or Path
        Usually ``OUTPUT/report.html``; local or a URL.
    data : ReportData

    Returns
    -------
    str or Path
        ``path``, as given.
    """
    write_atomic(path, render_report(data).encode("utf-8"))
    return path


# ------------------------------------------------------------------------------------------ building blocks


def _number(value) -> str:
    """Counts with thousands separators, measures to 3 significant digits, missing as a dash."""
    if value is None:
        return "–"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    value = float(value)
    # "#" keeps trailing zeros, so 0.520 lines up with 0.613 in a column.
    return "–" if math.isnan(value) else f"{value:#.3g}"


def _figure(png: bytes, alt: str, caption: str = "") -> str:
    source = base64.b64encode(png).decode("ascii")
    below = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img class="figure" alt="{escape(alt)}" src="data:image/png;base64,{source}">{below}</figure>'


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}">\n<h2>{escape(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def _paragraph(text: str, muted: bool = False) -> str:
    return f'<p class="muted">{escape(text)}</p>' if muted else f"<p>{escape(text)}</p>"


def _pair_cells(measure: str, predictd, baseline) -> str:
    """Two cells, predictd then baseline, the better one highlighted."""
    winner = better_side(measure, measure_value(predictd), measure_value(baseline))
    # "pd" draws the rule that groups each measure's pair of columns.
    return (f'<td class="pd{" better" if winner == "predictd" else ""}">{_number(predictd)}</td>'
            f'<td class="{"better" if winner == "baseline" else ""}">{_number(baseline)}</td>')


def _measure_header(measures: tuple[str, ...], leading: list[str]) -> str:
    """Two header rows: the ``leading`` columns, then each measure over a predictd and a baseline column."""
    span = "".join(f'<th rowspan="2" class="name">{escape(text)}</th>' for text in leading)
    top = "".join(f'<th colspan="2" title="{escape(direction(m))}">{escape(m)} {_arrow(m)}</th>'
                  for m in measures)
    sub = '<th class="sub">predictd</th><th class="sub">baseline</th>' * len(measures)
    return f"<thead><tr>{span}{top}</tr><tr>{sub}</tr></thead>"


def _arrow(measure: str) -> str:
    return "↓" if lower_is_better(measure) else "↑"


def _table(head: str, rows: list[str]) -> str:
    return f'<div class="scroll"><table>{head}<tbody>{"".join(rows)}</tbody></table></div>'


# ------------------------------------------------------------------------------------------------ sections


def _header(data: ReportData) -> str:
    notes = "".join(f"<li>{escape(note)}</li>" for note in [*data.notes, _refinement_note(data)])
    nav = "".join(f'<a href="#{anchor}">{escape(title)}</a>' for anchor, title in _SECTIONS)
    return (f"<header><h1>{escape(data.title)}</h1>\n"
            f"<p>Config SHA-256 <code>{escape(data.config_sha256)}</code></p>\n"
            f'<ul class="notes">{notes}</ul>\n'
            + "<p>Signal is on predictd's arcsinh(-log10 p) scale. <b>Baseline</b> is the obvious guess: the "
              "average of the same assay in the other cell types. A measure marked ↓ is an error (lower is "
              "better), ↑ a correlation, overlap or AUC (higher is better); the better of each pair is "
              "highlighted green.</p>\n"
            f"<nav>{nav}</nav></header>")


def _summary_section(data: ReportData) -> str:
    rows = {row["measure"]: row for row in data.summary if row["scope"] == "all"}
    if not rows:
        return _section("summary", "Summary", _paragraph("No experiment was scored.", muted=True))
    head = ("<thead><tr><th class='name'>measure</th><th class='name'>direction</th><th>experiments</th>"
            "<th>predictd mean</th><th>baseline mean</th><th>predictd wins</th><th>losses</th><th>ties</th>"
            "</tr></thead>")
    body = [_summary_row(m, rows[m]) for m in data.measures if m in rows]
    intro = _paragraph("Means over every scored experiment; wins, losses and ties count the experiments on "
                       "which predictd beat, lost to or matched the baseline.")
    return _section("summary", "Summary", _paragraph(_overall_wins(data)), intro, _table(head, body))


def _overall_wins(data: ReportData) -> str:
    """``"predictd's mean wins 8 of 9 measures: it loses MSE1obs."``"""
    record = mean_record(data.summary, "all", data.measures)
    exceptions = record.exceptions()
    return (f"predictd's mean wins {len(record.won)} of {record.compared} measures"
            + (f": it {exceptions}." if exceptions else "."))


def _summary_row(measure: str, row: dict) -> str:
    record = "".join(f"<td>{_number(row.get(key))}</td>" for key in ("wins", "losses", "ties"))
    return (f"<tr><td class='name'>{escape(measure)}</td><td class='name'>{escape(direction(measure))}</td>"
            f"<td>{_number(row.get('n'))}</td>{_pair_cells(measure, *_means(row))}{record}</tr>")


def _assay_section(data: ReportData) -> str:
    if not data.summary:
        return _section("assays", "Per assay", _paragraph("No experiment was scored.", muted=True))
    png = figures.assay_summary_png(data.summary, data.measures)
    figure = _figure(png, "Bar charts of each measure per assay, predictd against the baseline",
                     "Mean of each measure over the experiments of each assay: predictd (blue) against the "
                     "same-assay baseline (orange).")
    table_note = _paragraph("Wins, losses and ties add up every experiment and measure of the assay; 'measures "
                            "its mean wins' compares the two means of each measure over the assay.")
    return _section("assays", "Per assay", figure, table_note, _assay_table(data))


def _assay_table(data: ReportData) -> str:
    by_key = {(row["scope"], row["measure"]): row for row in data.summary}
    measures = tuple(m for m in data.measures if any(key[1] == m for key in by_key))
    head = _measure_header(measures, ["assay", "experiments", "predictd wins/losses/ties", "measures its mean wins"])
    rows = []
    for scope in figures.assay_scopes(data.summary):
        found = [by_key[(scope, m)] for m in measures if (scope, m) in by_key]
        pairs = "".join(_pair_cells(m, *_means(by_key.get((scope, m)))) for m in measures)
        n = max((row.get("n", 0) for row in found), default=0)
        record = "/".join(str(sum(row.get(k, 0) for row in found)) for k in ("wins", "losses", "ties"))
        means = mean_record(data.summary, scope, measures).describe()
        rows.append(f"<tr><td class='name'>{escape(scope)}</td><td>{_number(n)}</td><td>{record}</td>"
                    f"<td class='name'>{escape(means)}</td>{pairs}</tr>")
    return _table(head, rows)


def _means(row: dict | None) -> tuple:
    return (None, None) if row is None else (row.get("predictd_mean"), row.get("baseline_mean"))


def _experiment_section(data: ReportData) -> str:
    if not data.rows:
        return _section("experiments", "Per experiment", _paragraph("No experiment was scored.", muted=True))
    head = _measure_header(data.measures, ["target", "kind", "bins", "predictd better on"])
    body = [_experiment_row(row, data.measures) for row in data.rows]
    intro = _paragraph("Every scored experiment: test-fold experiments are imputed by the models that never saw "
                       "them, holdout targets by every model. 'predictd better on' counts the measures on "
                       "which it beat the baseline; trust a track that wins most of them.")
    return _section("experiments", "Per experiment", intro, _table(head, body))


def _experiment_row(row: dict, measures: tuple[str, ...]) -> str:
    target = f"{row.get('cell_type', '')}:{row.get('assay', '')}"
    pairs = "".join(_pair_cells(m, row.get(m), row.get(f"baseline_{m}")) for m in measures)
    scored = [(m, measure_value(row.get(m)), measure_value(row.get(f"baseline_{m}"))) for m in measures]
    compared = [(m, p, b) for m, p, b in scored if p is not None and b is not None]
    wins = f"{sum(better_side(m, p, b) == 'predictd' for m, p, b in compared)} of {len(compared)}"
    return (f"<tr><td class='name'>{escape(target)}</td><td class='name'>{escape(str(row.get('kind', '')))}</td>"
            f"<td>{_number(row.get('n_bins'))}</td><td>{escape(wins)}</td>{pairs}</tr>")


def _scatter_section(data: ReportData) -> str:
    if not data.scatter:
        return _section("scatter", "Observed vs imputed", _paragraph("No bins were sampled.", muted=True))
    shown = min(len(data.scatter), figures.MAX_SCATTER_TARGETS)
    caption = ("Observed against imputed signal over a sample of bins, one panel per target; the dashed line "
               "is perfect imputation, colour the number of bins (log scale).")
    if shown < len(data.scatter):
        caption += f" The first {shown} of {len(data.scatter)} targets are shown."
    figure = _figure(figures.scatter_png(data.scatter), "Observed against imputed signal per target", caption)
    return _section("scatter", "Observed vs imputed", figure)


def _browser_section(data: ReportData) -> str:
    if not data.panels:
        return _section("browser", "Genome browser", _paragraph("No browser window was drawn.", muted=True))
    intro = _paragraph("Each window shows the measured track, predictd's imputation (with the spread of the "
                       "ensemble's models when available) and the baseline on one shared scale.")
    # No caption: the figure's own title names the target and the window.
    panels = [_figure(figures.track_panel_png(panel),
                      f"Genome browser view of {panel.target} at {panel.contig}:{panel.start + 1}-{panel.end}")
              for panel in data.panels]
    return _section("browser", "Genome browser", intro, *panels)


def _refinement_note(data: ReportData) -> str:
    """The header's line on the refinement: the blend(s) and tensor share(s), how they were chosen, how many
    pairs they refine."""
    entries = data.refinement
    if not entries:
        return "Refinement: none; the imputations are the tensor ensemble's."
    blends = (_span([entry["blend"] for entry in entries], "{:g}") + ", tensor share "
              + _span([_tensor_share(entry) for entry in entries], "{:g}"))
    refined = sum(len(entry["refined"]) for entry in entries)
    pairs = f"{refined} of {len(data.cells) * len(data.assays)} pairs refined"
    if len(entries) == 1:
        left_out = _count(len(entries[0]["validated"]), "track")
        return f"Refinement: blend {blends} chosen by leaving out {left_out}; {pairs}."
    left_out = _span([len(entry["validated"]) for entry in entries], "{}")
    return (f"Refinement: {len(entries)} refiners (one per set of inputs, e.g. per test fold), blend {blends} "
            f"chosen by leaving out {left_out} tracks each; {pairs}.")


def _tensor_share(entry: dict) -> float:
    """The refiner's share of the tensor ensemble (0 in records written before the stage had one)."""
    return entry.get("tensor", 0.0)


def _count(n: int, noun: str) -> str:
    """``"1 track"``, ``"20 tracks"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _span(values: list, form: str) -> str:
    """One value, or ``"low–high"`` when they differ."""
    low, high = min(values), max(values)
    return form.format(low) if low == high else f"{form.format(low)}–{form.format(high)}"


def _refinement_section(data: ReportData) -> str:
    if not data.refinement:
        return _section("refinement", "Refinement", _paragraph(
            "The run did not refine: the imputations are the tensor ensemble's.", muted=True))
    intro = _paragraph("After the tensor ensemble, the refinement stage re-imputes each pair it can from the cell's "
                       "own tracks, blending its ridge with the same-assay average, then mixes the result with the "
                       "tensor ensemble's imputation. Both weights are chosen by inner validation: each validated "
                       "track is left out in turn and imputed at every blend (tensor share 0), then at the best "
                       "blend with every tensor share (only where the tracks left out are ones the tensor models "
                       "never trained on; else the tensor gets no share); the chosen row (framed) has the largest min gain, the "
                       "smallest share of the error it closes across the measures (an error is an MSE, or 1 minus a "
                       "correlation, overlap or AUC), against the better of the baseline and the tensor alone "
                       "(tensor share 1) on each measure. Each cell holds the mean over the left-out tracks; "
                       "green: better than the baseline's mean (last row).")
    head = ("<thead><tr><th class='name'>refiner</th><th>inputs</th><th>left out</th><th>pairs refined</th>"
            "<th>blend</th><th>tensor share</th><th>min gain</th></tr></thead>")
    overview = [_refiner_overview(number, entry) for number, entry in enumerate(data.refinement, start=1)]
    tables = [_refiner_details(number, entry, opened=len(data.refinement) == 1)
              for number, entry in enumerate(data.refinement, start=1)]
    return _section("refinement", "Refinement", intro, _table(head, overview), *tables)


def _refiner_overview(number: int, entry: dict) -> str:
    chosen = _chosen_row(entry)
    return (f"<tr><td class='name'>refiner {number}</td><td>{_number(len(entry['inputs']))}</td>"
            f"<td>{_number(len(entry['validated']))}</td><td>{_number(len(entry['refined']))}</td>"
            f"<td>{entry['blend']:g}</td><td>{_tensor_share(entry):g}</td>"
            f"<td>{_number(None if chosen is None else chosen.get('min_gain'))}</td></tr>")


def _chosen_row(entry: dict) -> dict | None:
    """The validation row of the blend and tensor share the refiner uses (None: they were not validated)."""
    return next((row for row in entry["validation"]
                 if row["blend"] is not None and math.isclose(row["blend"], entry["blend"], abs_tol=1e-9)
                 and math.isclose(_tensor_share(row), _tensor_share(entry), abs_tol=1e-9)), None)


def _refiner_details(number: int, entry: dict, opened: bool) -> str:
    """One refiner's validation table (rows: blends and tensor shares, then the baseline) under a one-line
    summary."""
    summary = (f"Refiner {number}: blend {entry['blend']:g}, tensor share {_tensor_share(entry):g}, "
               f"{_count(len(entry['inputs']), 'input')}, "
               f"{_count(len(entry['validated']), 'track')} left out, {_count(len(entry['refined']), 'pair')} refined")
    validated = _paragraph("Left out in turn: " + (", ".join(entry["validated"]) or "none") + ".", muted=True)
    refined = _paragraph("Refines: " + (", ".join(entry["refined"]) or "no pair") + ".", muted=True)
    table = _validation_table(entry) if entry["validation"] else _paragraph(
        "No validation table: no track could be left out, the blend and tensor share are the defaults.",
        muted=True)
    return (f"<details{' open' if opened else ''}><summary>{escape(summary)}</summary>\n"
            f"{table}\n{validated}\n{refined}</details>")


def _validation_table(entry: dict) -> str:
    rows = entry["validation"]
    baseline = next((row for row in rows if row["blend"] is None), {})
    measures = [key for key in rows[0] if key not in ("blend", "tensor", "min_gain")]
    head = ("<thead><tr><th class='name'>blend</th><th>tensor share</th><th>min gain</th>"
            + "".join(f'<th title="{escape(direction(m))}">{escape(m)} {_arrow(m)}</th>' for m in measures)
            + "</tr></thead>")
    chosen = _chosen_row(entry)
    body = []
    for row in rows:
        if row["blend"] is None:
            label, share, marked = "baseline", "", ""
        else:
            label = f"{row['blend']:g}" + (" (chosen)" if row is chosen else "")
            share, marked = f"{_tensor_share(row):g}", ' class="chosen"' if row is chosen else ""
        cells = "".join(_validation_cell(m, row.get(m), None if row is baseline else baseline.get(m))
                        for m in measures)
        body.append(f"<tr{marked}><td class='name'>{escape(label)}</td><td>{share}</td>"
                    f"<td>{_number(row.get('min_gain'))}</td>{cells}</tr>")
    return _table(head, body)


def _validation_cell(measure: str, value, baseline) -> str:
    """A blend's mean of one measure, green when it beats the baseline's."""
    winner = better_side(measure, measure_value(value), measure_value(baseline))
    return f'<td class="better">{_number(value)}</td>' if winner == "predictd" else f"<td>{_number(value)}</td>"


def _convergence_section(data: ReportData) -> str:
    if not data.histories:
        return _section("convergence", "Convergence", _paragraph("No training history was recorded.", muted=True))
    figure = _figure(figures.convergence_png(data.histories, data.best_iterations),
                     "Validation and training MSE per sweep for each model, one panel per test fold",
                     "Validation MSE (solid) and training MSE (dashed) per sweep; the dot marks the iteration each "
                     "model kept. Curves that still fall at the end mean training stopped early.")
    return _section("convergence", "Convergence", figure)


def _factor_section(data: ReportData) -> str:
    parts = [_factor_figure(names, factors, what, data.factor_model)
             for names, factors, what in ((data.cells, data.cell_factors, "cell type"),
                                          (data.assays, data.assay_factors, "assay"))
             if factors.size]
    if not parts:
        return _section("factors", "Factors", _paragraph("No factors were recorded.", muted=True))
    intro = _paragraph(f"Latent factors of model {data.factor_model}: cell types (or assays) with similar rows "
                       "are modelled alike.")
    return _section("factors", "Factors", intro, *parts)


def _factor_figure(names: tuple[str, ...], factors, what: str, model: str) -> str:
    return _figure(figures.factor_heatmap_png(names, factors, what, model), f"Heatmap of the {what} factors",
                   f"{what.capitalize()} factors of {model} (red positive, blue negative).")
