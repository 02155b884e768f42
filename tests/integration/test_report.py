"""report.html from synthetic numbers: every figure is a PNG, and the page decodes them all in headless Chromium.

The data is 5 cells x 4 assays, 3 scored targets (one with ``<`` in its cell name, to catch missing
escaping), one browser window per target and 2 test x 2 validation folds of training history. The
page then holds 1 per-assay chart + 1 scatter grid + 3 browser windows + 1 convergence chart + 2
factor heatmaps = 8 figures.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from predictd_core.report import (ReportData, TrackPanel, assay_summary_png, better_side, convergence_png,
                                  factor_heatmap_png, render_report, scatter_png, track_panel_png, write_report)

MEASURES = ("MSEglobal", "MSE1obs", "MSE1imp", "GWcorr", "GWcorrasinh", "GWspcorr", "Match1", "Catch1obs",
            "Catch1imp", "AucObs1", "AucImp1")
CELLS = ("E003<b>", "E004", "E005", "E006", "E007")
ASSAYS = ("H3K4me3", "H3K27ac", "H3K36me3", "DNase")
TARGETS = (("E003<b>", "H3K4me3", "holdout"), ("E004", "H3K27ac", "test-fold"), ("E006", "H3K4me3", "test-fold"))
EXPECTED_FIGURES = 8


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
        notes=["2 test folds x 2 validation folds, 4 models.", "3 experiments scored."])


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


def _section(html: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', html, flags=re.S)
    assert match, f"no section {anchor!r}"
    return match[1]


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
