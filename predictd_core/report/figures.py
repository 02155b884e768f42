"""The report's figures, each drawn on its own ``Figure`` with the Agg canvas and returned as PNG bytes.

No pyplot: nothing global is touched, so figures can be drawn from any thread and without a display.
Colours are fixed across figures (observed dark grey, predictd blue, baseline orange; Okabe-Ito, so
they stay apart for colour-blind readers).
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from predictd_core.evaluate.panels import TrackPanel
from predictd_core.report.data import direction

DPI = 100
OBSERVED = "#333333"
PREDICTD = "#0072B2"
BASELINE = "#E69F00"
NO_DATA = "#E8E8E8"
MAX_SCATTER_TARGETS = 12
_MAX_WIDTH = 14.0  # inches: the page is read at ~1400 px
_MODEL_NAME = re.compile(r"test(\d+)-valid(\d+)")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    # No Software tag: it would only add bytes (and a URL) to every image.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _grid(fig: Figure, n_panels: int, n_cols: int, sharex: bool = False) -> list:
    """``n_panels`` axes in rows of ``n_cols``; the unused cells of the last row are hidden.

    With ``sharex`` only the bottom panel of each column keeps its x tick labels.
    """
    n_rows = math.ceil(n_panels / n_cols)
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=sharex).ravel()
    for hidden in range(n_panels, axes.size):
        axes[hidden].set_visible(False)
        if sharex and hidden >= n_cols:
            # The panel above an empty cell is the bottom of its column.
            axes[hidden - n_cols].xaxis.set_tick_params(labelbottom=True)
    return list(axes[:n_panels])


# ------------------------------------------------------------------------------------- per-assay summary


def assay_scopes(summary: list[dict]) -> list[str]:
    """The assays of ``summary`` in first-seen order, or ``["all"]`` when it has no per-assay rows."""
    scopes = list(dict.fromkeys(row["scope"] for row in summary if row["scope"] != "all"))
    return scopes or ["all"]


def assay_summary_png(summary: list[dict], measures: tuple[str, ...]) -> bytes:
    """Small multiples: one panel per measure, a predictd and a baseline bar per assay.

    Parameters
    ----------
    summary : list of dict
        ``ReportData.summary`` rows; at least one for a measure in ``measures``.
    measures : tuple of str
        Panel order; measures without a summary row are left out.

    Returns
    -------
    bytes
        A PNG image.
    """
    scopes = assay_scopes(summary)
    by_key = {(row["scope"], row["measure"]): row for row in summary}
    shown = [m for m in measures if any((scope, m) in by_key for scope in scopes)]
    # Two columns at least, even for ~25 assays: one column of 14 measures would be a very long figure.
    panel_width = min(_MAX_WIDTH / 2, max(2.8, 0.25 * len(scopes) + 1.0))
    n_cols = max(1, min(4, len(shown), int(_MAX_WIDTH // panel_width)))
    n_rows = math.ceil(len(shown) / n_cols)
    label_room = 0.08 * max(len(s) for s in scopes) if len(scopes) > 4 else 0.3
    fig = Figure(figsize=(panel_width * n_cols, 1.9 * n_rows + label_room + 0.5), dpi=DPI, layout="constrained")
    for ax, measure in zip(_grid(fig, len(shown), n_cols, sharex=True), shown):
        _measure_bars(ax, measure, scopes, by_key)
    handles = [Patch(color=PREDICTD, label="predictd"), Patch(color=BASELINE, label="baseline (same-assay average)")]
    fig.legend(handles=handles, loc="outside upper center", ncols=2, frameon=False)
    return _png(fig)


def _measure_bars(ax, measure: str, scopes: list[str], by_key: dict) -> None:
    x = np.arange(len(scopes))
    for offset, key, color in ((-0.2, "predictd_mean", PREDICTD), (0.2, "baseline_mean", BASELINE)):
        heights = [by_key.get((scope, measure), {}).get(key, np.nan) for scope in scopes]
        ax.bar(x + offset, np.asarray(heights, dtype=float), width=0.4, color=color)
    tilted = len(scopes) > 4
    ax.set_xticks(x, scopes, rotation=45 if tilted else 0, ha="right" if tilted else "center", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(f"{measure} ({direction(measure)})", fontsize=9)
    ax.grid(axis="y", color="0.9")
    ax.set_axisbelow(True)


# ----------------------------------------------------------------------------------- observed vs imputed


def scatter_png(scatter: dict[str, tuple[np.ndarray, np.ndarray]], max_targets: int = MAX_SCATTER_TARGETS) -> bytes:
    """Observed against imputed signal, one hexbin panel per target, with the diagonal.

    Parameters
    ----------
    scatter : dict of str to (ndarray, ndarray)
        Target to (observed, imputed) arcsinh signal of a sample of bins; at least one target.
    max_targets : int
        The first ``max_targets`` targets are drawn; a grid of more would be unreadable.

    Returns
    -------
    bytes
        A PNG image.
    """
    targets = list(scatter)[:max_targets]
    n_cols = min(4, len(targets))
    n_rows = math.ceil(len(targets) / n_cols)
    fig = Figure(figsize=(3.2 * n_cols, 3.1 * n_rows), dpi=DPI, layout="constrained")
    for ax, target in zip(_grid(fig, len(targets), n_cols), targets):
        _scatter_panel(ax, target, *scatter[target])
    return _png(fig)


def _scatter_panel(ax, target: str, observed: np.ndarray, imputed: np.ndarray) -> None:
    observed, imputed = np.asarray(observed, dtype=float), np.asarray(imputed, dtype=float)
    finite = np.isfinite(observed) & np.isfinite(imputed)
    ax.set_title(target, fontsize=9)
    ax.set_xlabel("observed (arcsinh)", fontsize=8)
    ax.set_ylabel("imputed (arcsinh)", fontsize=8)
    ax.tick_params(labelsize=7)
    if not finite.any():
        ax.text(0.5, 0.5, "no observed bins", ha="center", va="center", transform=ax.transAxes)
        return
    x, y = observed[finite], imputed[finite]
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    high = high if high > low else low + 1.0
    # Log counts: most bins sit near zero signal and would otherwise hide the peaks.
    ax.hexbin(x, y, gridsize=40, bins="log", mincnt=1, cmap="viridis", extent=(low, high, low, high))
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, linestyle="--")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    r = np.corrcoef(x, y)[0, 1] if x.size > 1 and x.std() > 0 and y.std() > 0 else np.nan
    ax.text(0.03, 0.97, f"r = {r:.2f}\nn = {x.size:,}", transform=ax.transAxes, va="top", fontsize=8)


# ------------------------------------------------------------------------------------- genome browser


def track_panel_png(panel: TrackPanel) -> bytes:
    """One browser window: observed, predictd (± ensemble spread) and baseline as filled step tracks.

    The three tracks share both axes, so heights compare directly; bins without observed data are
    shaded grey on the observed track rather than drawn as zero.

    Parameters
    ----------
    panel : TrackPanel

    Returns
    -------
    bytes
        A PNG image.
    """
    edges = panel.start + panel.bin_size * np.arange(len(panel.observed) + 1)
    fig = Figure(figsize=(12, 3.8), dpi=DPI, layout="constrained")
    axes = fig.subplots(3, 1, sharex=True, sharey=True)
    tracks = (("observed", panel.observed, OBSERVED), ("predictd", panel.imputed, PREDICTD),
              ("baseline", panel.baseline, BASELINE))
    for ax, (label, values, color) in zip(axes, tracks):
        ax.stairs(np.asarray(values, dtype=float), edges, fill=True, color=color)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    _shade_missing(axes[0], edges, panel.observed)
    if panel.spread is not None:
        imputed, spread = np.asarray(panel.imputed, dtype=float), np.asarray(panel.spread, dtype=float)
        axes[1].stairs(imputed + spread, edges, baseline=imputed - spread, fill=True, color=PREDICTD, alpha=0.3,
                       label="± model spread")
    formatter, unit = _position_formatter(panel.start, panel.end)
    axes[-1].xaxis.set_major_formatter(formatter)
    axes[-1].set_xlim(panel.start, panel.end)
    axes[-1].set_xlabel(f"{panel.contig} ({unit})", fontsize=9)
    fig.suptitle(f"{panel.target}    {panel.contig}:{panel.start + 1:,}-{panel.end:,}    arcsinh(-log10 p)",
                 fontsize=10)
    # One legend above the tracks: inside a track it would sit on the peaks, beside it it would narrow
    # this window's tracks and misalign them with the other windows'.
    handles = [handle for ax in axes for handle in ax.get_legend_handles_labels()[0]]
    if handles:
        fig.legend(handles=handles, loc="outside upper right", ncols=len(handles), fontsize=8, frameon=False)
    return _png(fig)


def _shade_missing(ax, edges: np.ndarray, observed: np.ndarray) -> None:
    missing = np.isnan(np.asarray(observed, dtype=float))
    if missing.any():
        ax.fill_between(edges, 0, 1, where=np.append(missing, False), step="post", color=NO_DATA,
                        transform=ax.get_xaxis_transform(), label="no observed data")


def _position_formatter(start: int, end: int) -> tuple[FuncFormatter, str]:
    """Tick labels in Mb past the first megabase, else kb, with just enough decimals to tell ticks apart."""
    scale, unit = (1e6, "Mb") if end >= 1e6 else (1e3, "kb")
    tick_step = max(end - start, 1) / 5 / scale
    decimals = min(6, max(0, math.ceil(-math.log10(tick_step))))
    return FuncFormatter(lambda x, _: f"{x / scale:,.{decimals}f}"), unit


# ----------------------------------------------------------------------------------------- convergence


def convergence_png(histories: dict[str, list[dict]], best_iterations: dict[str, int]) -> bytes:
    """Validation (solid) and training (dashed) MSE per sweep; one subplot per test fold, one line per model.

    Parameters
    ----------
    histories : dict of str to list of dict
        Model name to iteration-log rows (``iteration``, ``train_mse``, ``valid_mse``); at least one.
    best_iterations : dict of str to int
        The iteration each model kept, marked with a dot.

    Returns
    -------
    bytes
        A PNG image.
    """
    groups = _group_by_test_fold(histories)
    n_cols = min(3, len(groups))
    n_rows = math.ceil(len(groups) / n_cols)
    fig = Figure(figsize=(4.6 * n_cols, 3.3 * n_rows), dpi=DPI, layout="constrained")
    for ax, (title, models) in zip(_grid(fig, len(groups), n_cols), groups.items()):
        for index, (label, name) in enumerate(models):
            _history_lines(ax, label, histories[name], best_iterations.get(name), f"C{index % 10}")
        _log_mse_axis(ax, np.array([row.get(key, np.nan) for _, name in models for row in histories[name]
                                    for key in ("train_mse", "valid_mse")], dtype=float))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("sweep", fontsize=8)
        ax.set_ylabel("MSE (arcsinh)", fontsize=8)
        ax.tick_params(which="both", labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(color="0.92")
        ax.legend(fontsize=7, frameon=False)
    handles = [Line2D([], [], color="0.3", label="validation MSE"),
               Line2D([], [], color="0.3", linestyle="--", label="training MSE"),
               Line2D([], [], color="0.3", marker="o", linestyle="", label="kept iteration")]
    fig.legend(handles=handles, loc="outside upper center", ncols=3, frameon=False, fontsize=9)
    return _png(fig)


def _group_by_test_fold(histories: dict[str, list[dict]]) -> dict[str, list[tuple[str, str]]]:
    """``"test fold i"`` -> [(line label, model name)]; names not ``test{i}-valid{j}`` share one group."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(histories, key=_model_sort_key):
        match = _MODEL_NAME.fullmatch(name)
        title, label = (f"test fold {match[1]}", f"valid {match[2]}") if match else ("other models", name)
        groups.setdefault(title, []).append((label, name))
    return groups


def _model_sort_key(name: str) -> tuple:
    match = _MODEL_NAME.fullmatch(name)
    return (0, int(match[1]), int(match[2]), "") if match else (1, 0, 0, name)


def _history_lines(ax, label: str, history: list[dict], best: int | None, color: str) -> None:
    iterations = np.array([row["iteration"] for row in history], dtype=float)
    valid = np.array([row.get("valid_mse", np.nan) for row in history], dtype=float)
    train = np.array([row.get("train_mse", np.nan) for row in history], dtype=float)
    ax.plot(iterations, valid, color=color, linewidth=1.4, label=label)
    ax.plot(iterations, train, color=color, linewidth=1.0, linestyle="--")
    kept = iterations == best
    if kept.any():
        ax.plot(iterations[kept], valid[kept], "o", color=color, markeredgecolor="black", markersize=6)


def _log_mse_axis(ax, values: np.ndarray) -> None:
    """A log axis with plain tick labels (0.3, not 3x10^-1); within a decade or so, 2, 3 and 5 x 10^k too."""
    finite = values[np.isfinite(values)]
    if not finite.size or finite.min() <= 0:
        return
    # The first sweeps fall steeply; a log axis keeps the late, small changes that decide stopping visible.
    ax.set_yscale("log")
    plain = FuncFormatter(lambda y, _: f"{y:.2g}")
    ax.yaxis.set_major_formatter(plain)
    few_decades = np.log10(finite.max() / finite.min()) < 1.5
    ax.yaxis.set_minor_formatter(FuncFormatter(_label_2_3_5) if few_decades else NullFormatter())


def _label_2_3_5(y: float, _) -> str:
    # Labelling every minor tick crowds 0.7, 0.8, 0.9 together at the top of a decade.
    leading = round(y / 10 ** math.floor(math.log10(y)))
    return f"{y:.2g}" if leading in (2, 3, 5) else ""


# -------------------------------------------------------------------------------------------- factors


def factor_heatmap_png(names: tuple[str, ...], factors: np.ndarray, what: str, model: str) -> bytes:
    """Heatmap of one factor matrix (rows named), diverging colours centred at 0.

    Parameters
    ----------
    names : tuple of str
        Row names (cell types or assays).
    factors : ndarray of shape (n_rows, rank)
    what : str
        ``"cell type"`` or ``"assay"``: the title and axis label.
    model : str
        The model the factors belong to.

    Returns
    -------
    bytes
        A PNG image.
    """
    factors = np.asarray(factors, dtype=float)
    n_rows, rank = factors.shape
    height = min(20.0, max(2.4, 0.22 * n_rows + 1.4))
    width = min(_MAX_WIDTH, max(6.0, 0.12 * rank + 3.0))
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    limit = float(np.nanmax(np.abs(factors), initial=0.0)) or 1.0
    image = ax.imshow(factors, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_yticks(np.arange(n_rows), names, fontsize=8 if n_rows <= 60 else 6)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("latent factor", fontsize=9)
    ax.set_ylabel(what, fontsize=9)
    ax.set_title(f"{what} factors of {model}", fontsize=10)
    # A fixed ~0.2 in wide bar: the default (a fraction of the axes) is a slab beside a tall heatmap.
    fig.colorbar(image, ax=ax, shrink=0.9, aspect=max(10.0, 0.9 * (height - 1.2) / 0.2), label="factor value")
    return _png(fig)
