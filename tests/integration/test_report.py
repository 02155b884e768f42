"""report.html from synthetic numbers: every figure is a PNG, and the page decodes them all in headless Chromium.

The data is 5 cells x 4 assays, 3 scored targets (one with ``<`` in its cell name, to catch missing
escaping), one browser window per target, 2 test x 2 validation folds of training history and one
refiner of the refinement stage (its blend 0.6 validated on 2 tracks). The page then holds 1 per-assay
chart + 1 scatter grid + 3 browser windows + 1 convergence chart + 2 factor heatmaps = 8 figures.
"""

from __future__ import annotations

import html
import math
import re
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from predictd_core.evaluate.panels import TrackPanel
from predictd_core.report import (ReportData, assay_summary_png, better_side, convergence_png, factor_heatmap_png,
                                  render_report, scatter_png, track_panel_png, write_report)

MEASURES = ("MSEglobal", "MSE1obs", "MSE1imp", "GWcorr", "GWcorrasinh", "GWspcorr", "Match1", "Catch1obs",
            "Catch1imp", "AucObs1", "AucImp1")
CELLS = ("E003<b>", "E004", "E005", "E006", "E007")
ASSAYS = ("H3K4me3", "H3K27ac", "H3K36me3", "DNase")
TARGETS = (("E003<b>", "H3K4me3", "holdout"), ("E004", "H3K27ac", "test-fold"), ("E006", "H3K4me3", "test-fold"))
EXPECTED_FIGURES = 8
REFINE_MEASURES = ("MSEglobal", "MSE1obs", "MSE1imp", "GWcorr", "Match1", "Catch1obs", "Catch1imp", "AucObs1",
                   "AucImp1")


# ------------------------------------------------------------------------------------------ synthetic run


def _rows(rng: np.random.Generator) -> list[dict]:
    rows = []
    for cell, assay, kind in TARGETS:
        row = {"cell_type": cell, "assay": assay, "kind": kind, "n_bins": 4000}
        for measure in MEASURES:
            scale = 0.3 if measure.startswith("MSE") else 0.8
            row[measure], row[f"baseline_{measure}"] = rng.uniform(0.5, 1.0, size=2) * scale
        rows.append(row)
    return rows


def _summary(rows: list[dict]) -> list[dict]:
    """What the pipeline computes: per scope and measure, the two means and predictd's record."""
    scopes = {"all": rows} | {assay: [r for r in rows if r["assay"] == assay] for assay in dict.fromkeys(
        r["assay"] for r in rows)}
    summary = []
    for scope, members in scopes.items():
        for measure in MEASURES:
            sides = [better_side(measure, r[measure], r[f"baseline_{measure}"]) for r in members]
            summary.append({"scope": scope, "measure": measure, "n": len(members),
                            "predictd_mean": float(np.mean([r[measure] for r in members])),
                            "baseline_mean": float(np.mean([r[f"baseline_{measure}"] for r in members])),
                            "wins": sides.count("predictd"), "losses": sides.count("baseline"),
                            "ties": sides.count(None)})
    return summary


def _history(rng: np.random.Generator, n_sweeps: int) -> list[dict]:
    sweeps = np.arange(n_sweeps)
    train = 0.2 + 0.8 * np.exp(-sweeps / 3.0)
    valid = train + 0.05 + 0.002 * np.maximum(sweeps - 8, 0) ** 2 + rng.normal(0, 0.005, n_sweeps)
    return [{"iteration": int(i), "objective": float(t * 1e4), "train_mse": float(t), "valid_mse": float(v)}
            for i, t, v in zip(sweeps, train, valid)]


def _panel(rng: np.random.Generator, target: str, spread: bool) -> TrackPanel:
    n_bins = 400
    peaks = np.zeros(n_bins)
    for center in rng.integers(20, n_bins - 20, size=4):
        peaks += 3.0 * np.exp(-0.5 * ((np.arange(n_bins) - center) / 6.0) ** 2)
    observed = peaks + rng.gamma(1.0, 0.2, n_bins)
    observed[150:180] = np.nan  # an unmappable stretch
    imputed = 0.8 * peaks + 0.2
    return TrackPanel(target=target, contig="chr19", start=1_234_500, bin_size=25, observed=observed,
                      imputed=imputed, baseline=0.4 * peaks + 0.3,
                      spread=np.abs(rng.normal(0.15, 0.05, n_bins)) if spread else None)


def _scatter(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    scatter = {}
    for cell, assay, _ in TARGETS:
        observed = np.arcsinh(rng.gamma(0.6, 2.0, 3000))
        scatter[f"{cell}:{assay}"] = (observed, 0.8 * observed + rng.normal(0, 0.25, observed.size))
    return scatter


def _refiner(blend: float, validated: list[str], refined: list[str], tensor: float = 0.0) -> dict:
    """A refiner's record (``Refinement.record()``'s format). At blend weight b each MSE's mean is 0.5 - 0.1 b
    and every other measure's 0.6 + 0.2 b, against the baseline's 0.45 and 0.70: a blend above 0.5 beats
    the baseline on all 9 measures, one below it on none. ``min_gain`` peaks at ``blend``, at 0.1; the
    rows of ``blend`` with a tensor share t (0.1, ..., 1) have the same means and ``min_gain`` peaks at
    ``tensor``, at 0.15 (below 0.1 everywhere when ``tensor`` is 0)."""
    def means(b: float) -> dict:
        return {m: 0.5 - 0.1 * b if m.startswith("MSE") else 0.6 + 0.2 * b for m in REFINE_MEASURES}

    rows = [{"blend": b / 10, "tensor": 0.0, "min_gain": round(0.1 - abs(b / 10 - blend), 2), **means(b / 10)}
            for b in range(11)]
    peak = 0.15 if tensor else 0.1
    rows += [{"blend": blend, "tensor": t / 10, "min_gain": round(peak - abs(t / 10 - tensor), 2), **means(blend)}
             for t in range(1, 11)]
    baseline = {"blend": None, "tensor": None, "min_gain": 0.0,
                **{m: 0.45 if m.startswith("MSE") else 0.70 for m in REFINE_MEASURES}}
    return {"inputs": [f"{cell}:{assay}" for cell in CELLS[1:] for assay in ASSAYS], "blend": blend,
            "tensor": tensor, "validated": validated, "validation": [*rows, baseline], "refined": refined}


def synthetic_report() -> ReportData:
    """The module docstring's run, from a fixed seed."""
    rng = np.random.default_rng(11)
    rows = _rows(rng)
    names = [f"test{i}-valid{j}" for i in range(2) for j in range(2)]
    histories = {name: _history(rng, 14) for name in names}
    best = {name: int(np.argmin([row["valid_mse"] for row in histories[name]])) for name in names}
    return ReportData(
        title="predictd cross-validation: synthetic <run>", config_sha256="ab" * 32, rows=rows,
        summary=_summary(rows), measures=MEASURES, histories=histories, best_iterations=best,
        cells=CELLS, assays=ASSAYS, cell_factors=rng.normal(size=(5, 6)), assay_factors=rng.normal(size=(4, 6)),
        factor_model="test0-valid0", scatter=_scatter(rng),
        panels=[_panel(rng, f"{c}:{a}", spread=k == "holdout") for c, a, k in TARGETS],
        notes=["2 test folds x 2 validation folds, 4 models.", "3 experiments scored."],
        refinement=[_refiner(0.6, ["E004:H3K4me3", "E005:DNase"], ["E003<b>:H3K4me3"])])


@pytest.fixture
def report_data() -> ReportData:
    return synthetic_report()


# ---------------------------------------------------------------------------------------------- helpers


def _chromium() -> str:
    path = shutil.which("chromium")
    assert path, "chromium is not installed: run `make chromium` (Debian's chromium package)"
    return path


def _dump_dom(page, profile) -> str:
    result = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
                             page.as_uri()], capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


def _body_attribute(dom: str, name: str) -> str:
    body = re.search(r"<body[^>]*>", dom)
    assert body, "no <body> in the dumped DOM"
    value = re.search(rf'{name}="([^"]*)"', body[0])
    assert value, f"{name} missing from {body[0]}"
    return value[1]


def _section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', page, flags=re.S)
    assert match, f"no section {anchor!r}"
    return match[1]


def _notes(page: str) -> list[str]:
    """The header's note lines, as text."""
    notes = re.search(r'<ul class="notes">(.*?)</ul>', page, flags=re.S)
    assert notes, "no notes in the header"
    return [html.unescape(note) for note in re.findall(r"<li>(.*?)</li>", notes[1])]


def _table_rows(fragment: str) -> list[str]:
    """The body rows of the tables in ``fragment``, in order."""
    return re.findall(r"<tr[^>]*>.*?</tr>", "".join(re.findall(r"<tbody>(.*?)</tbody>", fragment, flags=re.S)),
                      flags=re.S)


def _cells(row: str) -> list[tuple[str, str]]:
    """(class attribute, text) of each cell of a table row."""
    return [(classes, html.unescape(text)) for classes, text in
            re.findall(r"<td(?: class=['\"]([^'\"]*)['\"])?>(.*?)</td>", row, flags=re.S)]


# ------------------------------------------------------------------------------------------------- tests


def test_report_renders_in_chromium(tmp_path, report_data):
    page = write_report(tmp_path / "out" / "report.html", report_data)
    html = page.read_text(encoding="utf-8")
    dom = _dump_dom(page, tmp_path / "profile")

    assert _body_attribute(dom, "data-figures-total") == str(EXPECTED_FIGURES)
    assert _body_attribute(dom, "data-figures-loaded") == str(EXPECTED_FIGURES)
    assert "http://" not in html and "https://" not in html
    experiments = _section(dom, "experiments")
    for measure in MEASURES:
        assert measure in experiments, f"{measure} missing from the per-experiment table"
    summary = _section(dom, "summary")
    for row in (r for r in report_data.summary if r["scope"] == "all"):
        assert f"{row['predictd_mean']:#.3g}" in summary and f"{row['baseline_mean']:#.3g}" in summary
    # The cell name "E003<b>" must be text, not a <b> element.
    assert "E003&lt;b&gt;:H3K4me3" in experiments
    assert "<b>:H3K4me3" not in dom and "synthetic &lt;run&gt;" in dom


@pytest.mark.parametrize("draw", [
    lambda d: assay_summary_png(d.summary, d.measures),
    lambda d: scatter_png(d.scatter),
    lambda d: track_panel_png(d.panels[0]),
    lambda d: track_panel_png(d.panels[1]),
    lambda d: convergence_png(d.histories, d.best_iterations),
    lambda d: factor_heatmap_png(d.cells, d.cell_factors, "cell type", d.factor_model),
], ids=["assay-summary", "scatter", "panel-with-spread", "panel-without-spread", "convergence", "factors"])
def test_figures_are_png(report_data, draw):
    assert draw(report_data).startswith(b"\x89PNG\r\n\x1a\n")


def test_report_without_panels_or_spread(report_data):
    without_spread = [replace(panel, spread=None) for panel in report_data.panels]
    assert render_report(replace(report_data, panels=without_spread)).count('class="figure"') == EXPECTED_FIGURES
    html = render_report(replace(report_data, panels=[]))
    assert html.count('class="figure"') == EXPECTED_FIGURES - len(report_data.panels)
    assert "No browser window was drawn." in html


def test_report_of_an_empty_run_renders(report_data):
    empty = replace(report_data, rows=[], summary=[], histories={}, best_iterations={}, scatter={}, panels=[],
                    cell_factors=np.zeros((0, 0)), assay_factors=np.zeros((0, 0)))
    assert 'class="figure"' not in render_report(empty)


def test_refinement_section_shows_the_chosen_blend_and_its_validation_table(report_data):
    page = render_report(report_data)
    assert "Refinement: blend 0.6, tensor share 0 chosen by leaving out 2 tracks; 1 of 20 pairs refined." in _notes(page)
    assert '<a href="#refinement">Refinement</a>' in page
    section = _section(page, "refinement")
    overview, *validation = _table_rows(section)
    assert [text for _, text in _cells(overview)] == ["refiner 1", "16", "2", "1", "0.6", "0", "0.100"]
    assert "<details open>" in section  # a single refiner's table is shown, not folded away
    assert len(validation) == 22  # blends 0, 0.1, ..., 1; blend 0.6 with tensor shares 0.1, ..., 1; the baseline
    chosen = [row for row in validation if row.startswith('<tr class="chosen">')]
    assert chosen == [validation[6]]
    label, share, gain, *means = _cells(chosen[0])
    assert label[1] == "0.6 (chosen)" and share[1] == "0" and gain[1] == "0.100"
    assert [_cells(row)[1][1] for row in validation[11:21]] == [f"{t / 10:g}" for t in range(1, 11)]
    # 0.5 - 0.06 for the three MSEs, 0.6 + 0.12 for the rest: every one beats the baseline's mean
    assert means == [("better", "0.440")] * 3 + [("better", "0.720")] * 6
    assert all(classes != "better" for classes, _ in _cells(validation[4]))  # blend 0.4 beats it nowhere
    label, share, gain, *means = _cells(validation[-1])
    assert label[1] == "baseline" and share[1] == "" and [text for _, text in means] == ["0.450"] * 3 + ["0.700"] * 6
    assert "Left out in turn: E004:H3K4me3, E005:DNase." in section
    assert "Refines: E003&lt;b&gt;:H3K4me3." in section


def test_refinement_of_several_folds_is_one_folded_table_each(report_data):
    refiners = [_refiner(0.4, ["E004:H3K4me3", "E005:DNase"], ["E003<b>:H3K4me3", "E004:DNase"]),
                _refiner(0.7, ["E004:H3K4me3", "E005:DNase", "E006:DNase"], ["E005:H3K27ac"], tensor=0.3)]
    page = render_report(replace(report_data, refinement=refiners))
    assert ("Refinement: 2 refiners (one per set of inputs, e.g. per test fold), blend 0.4–0.7, tensor share 0–0.3 "
            "chosen by leaving out 2–3 tracks each; 3 of 20 pairs refined.") in _notes(page)
    section = _section(page, "refinement")
    assert section.count("<details>") == 2 and "<details open>" not in section
    rows = _table_rows(section)
    overviews = [[text for _, text in _cells(row)] for row in rows[:2]]
    assert overviews == [["refiner 1", "16", "2", "2", "0.4", "0", "0.100"],
                         ["refiner 2", "16", "3", "1", "0.7", "0.3", "0.150"]]
    chosen = [[text for _, text in _cells(row)[:3]] for row in rows if row.startswith('<tr class="chosen">')]
    assert chosen == [["0.4 (chosen)", "0", "0.100"], ["0.7 (chosen)", "0.3", "0.150"]]  # the second: a tensor row


def test_a_run_without_refinement_says_the_imputations_are_the_ensembles(report_data):
    page = render_report(replace(report_data, refinement=[]))
    assert "Refinement: none; the imputations are the tensor ensemble's." in _notes(page)
    section = html.unescape(_section(page, "refinement"))
    assert "The run did not refine: the imputations are the tensor ensemble's." in section
    assert "<table" not in section


def _mean_row(scope: str, measure: str, outcome: str) -> dict:
    """A summary row whose means make predictd win, lose, tie or lack a baseline (lower MSEs are better)."""
    better, worse = (0.2, 0.3) if measure.startswith("MSE") else (0.8, 0.7)
    predictd, baseline = {"win": (better, worse), "loss": (worse, better), "tie": (0.5, 0.5),
                          "missing": (0.5, math.nan)}[outcome]
    return {"scope": scope, "measure": measure, "n": 2, "predictd_mean": predictd, "baseline_mean": baseline,
            "wins": 1, "losses": 1, "ties": 0}


def test_the_measures_the_mean_wins_are_named_overall_and_per_assay(report_data):
    outcomes = {"all": {"MSE1obs": "loss"},
                "H3K4me3": {"MSE1obs": "loss", "AucObs1": "loss", "GWcorr": "tie"},
                "H3K27ac": {"Match1": "missing"}}
    summary = [_mean_row(scope, m, changes.get(m, "win")) for scope, changes in outcomes.items() for m in MEASURES]
    page = render_report(replace(report_data, summary=summary))
    assert "predictd's mean wins 10 of 11 measures: it loses MSE1obs." in html.unescape(_section(page, "summary"))
    assays = {cells[0][1]: cells[3][1] for cells in map(_cells, _table_rows(_section(page, "assays")))}
    assert assays == {"H3K4me3": "8 of 11 (loses MSE1obs, AucObs1; ties GWcorr)", "H3K27ac": "10 of 10"}
