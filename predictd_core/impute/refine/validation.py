"""The refinement's inner validation: step 4's blend and step 6's tensor share of :mod:`predictd_core.impute.refine`,
and, when more than one is offered, the regression (ridge or trees).

Measured tracks are left out one at a time (:func:`inner_tracks`), refitted without, and scored against the
other cells' average of their assay on the :data:`SCORED` measures at every candidate (per regressor:
:data:`BLENDS`, then :data:`TENSOR_SHARES`); :func:`choose_blend` keeps the candidate with the largest
:func:`smallest_gain`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from predictd_core.impute.refine.features import SCALE_MODELS, ChunkFeatures, cell_scale, cell_similarity, quantile_tables
from predictd_core.impute.refine.regression import (Refiner, peak_weights, prepared_refiner, ridge_systems,
                                                    solve_ridges, tree_models)
from predictd_core.model.factors import Layout
from predictd_core.model.measures import ObservedTrack, lower_is_better

BLENDS = np.round(np.linspace(0.0, 1.0, 11), 2)
TENSOR_SHARES = np.round(np.linspace(0.1, 1.0, 10), 2)  # tried at the best blend (0: that blend's own row)
SCORED = ("MSEglobal", "MSE1obs", "MSE1imp", "GWcorr", "Match1", "Catch1obs", "Catch1imp", "AucObs1", "AucImp1")


def inner_tracks(layout: Layout, inputs: np.ndarray, limit: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Positions in ``inputs`` of the tracks the blend is validated on: those whose assay has at least
    three input cells (two remain to fit without it), with ``allowed`` (bool per input) only those among them,
    ordered by assay; when there are more than ``limit``, an even sample of ``limit`` of them, so that each
    assay is validated as often as it is measured, as a test fold drawn from the measured tracks holds it (one
    track per assay would let Roadmap's 19 rarely measured marks outvote the five that make most of its
    tracks)."""
    assays = layout.assay_of[inputs]
    counts = np.bincount(assays, minlength=len(layout.assays))
    eligible = [int(j) for j in np.flatnonzero(counts[assays] >= 3) if allowed is None or allowed[j]]
    eligible.sort(key=lambda j: (assays[j], j))
    if len(eligible) > limit:
        eligible = [eligible[(2 * i + 1) * len(eligible) // (2 * limit)] for i in range(limit)]
    return np.array(eligible, dtype=np.int64)


@dataclass(frozen=True)
class BlendValidation:
    """What :func:`choose_blend` measured.

    Attributes
    ----------
    blend : float
        The chosen weight of the regression against the average.
    tensor : float
        The chosen share of the tensor ensemble's imputation.
    tracks : tuple of int
        Store columns of the tracks left out in turn.
    table : tuple of dict
        One row per candidate: ``blend``, ``tensor``, ``min_gain`` (the criterion) and the mean of each
        :data:`SCORED` measure over the left-out tracks: every :data:`BLENDS` weight with no tensor share,
        then (when the tensor was judged) the best of them with each of :data:`TENSOR_SHARES`; last a row
        ``blend: None, tensor: None`` with the baseline's means. With more than one regressor, the chosen
        regressor's rows.
    regressor : str
        The chosen regression (:data:`~predictd_core.impute.refine.regression.REGRESSORS`).
    gains : dict
        Each regressor tried and the largest smallest gain of its candidates.
    neighbours : int
        The chosen number of most similar cells whose tracks the regression reads.
    neighbour_losses : dict
        Each number of neighbours tried (:func:`neighbour_counts`) and the chosen regression's held-out loss
        with it: the peak-weighted squared error it is fitted with
        (:func:`~predictd_core.impute.refine.regression.peak_weights`), of the regression alone on the cell's
        scale, mean over the left-out tracks.
    scale : str
        The chosen model of the cells' scale (:data:`~predictd_core.impute.refine.features.SCALE_MODELS`).
    scale_losses : dict
        Each scale model and its held-out error (:func:`scale_losses`).
    """

    blend: float
    tensor: float
    tracks: tuple[int, ...]
    table: tuple[dict, ...]
    regressor: str = "ridge"
    gains: dict = field(default_factory=dict)
    neighbours: int = 0
    neighbour_losses: dict = field(default_factory=dict)
    scale: str = "additive"
    scale_losses: dict = field(default_factory=dict)


def scale_losses(tables: np.ndarray, layout: Layout, inputs: np.ndarray, held: np.ndarray) -> dict[str, float]:
    """Each of :data:`~predictd_core.impute.refine.features.SCALE_MODELS` and its held-out error: for every
    position ``held`` in ``inputs``, the model fitted to the other inputs' quantile ``tables`` predicts the
    track's own quantile function, and the error is their mean squared difference over the levels (the squared
    2-Wasserstein distance between the predicted distribution and the track's); mean over the held tracks."""
    n_cells, n_assays = len(layout.cells), len(layout.assays)
    cells, assays = layout.cell_of[inputs], layout.assay_of[inputs]
    losses = {model: [] for model in SCALE_MODELS}
    for j in held:
        rest = np.arange(inputs.size) != j
        pair = cells[j] * n_assays + assays[j]
        for model in SCALE_MODELS:
            predicted = cell_scale(tables[rest], cells[rest], assays[rest], n_cells, n_assays, model)[pair]
            losses[model].append(float(np.mean(np.square(predicted - tables[j]))))
    return {model: float(np.mean(values)) for model, values in losses.items()}


def neighbour_counts(neighbours: int) -> tuple[int, ...]:
    """The numbers of nearest cells the validation tries up to ``neighbours``: none, the powers of two below it
    and ``neighbours`` (4: 0, 1, 2 and 4); ranks nest, so one fit with the most serves them all."""
    powers = [1 << i for i in range(neighbours.bit_length()) if 1 << i < neighbours]
    return tuple(sorted({0, neighbours, *powers}))


@dataclass(frozen=True)
class _LeftOutTrack:
    """One validation track as :func:`choose_blend` scores it: observed where the baseline is defined (and
    sorted once), the refit's regression and average (reference scale), the tensor's left-out imputation."""

    cell: int
    assay: int
    refiner: Refiner
    observed: ObservedTrack
    regression: np.ndarray
    average: np.ndarray
    tensor: np.ndarray

    def scores(self, blend: float, share: float) -> dict:
        imputed = self.refiner.combine(self.regression, self.average, self.tensor, self.cell, self.assay, blend,
                                       share)
        return self.observed.measures(imputed, rank_correlation=False)


def choose_blend(chunks: list[np.ndarray], layout: Layout, inputs: np.ndarray, ridge: float, limit: int,
                 tensor: list[np.ndarray], tables: np.ndarray | None = None,
                 regressors: tuple[str, ...] = ("ridge",), stacked: list[np.ndarray] | None = None,
                 neighbours: int = 0) -> BlendValidation:
    """The cells' scale model, then the blend and the tensor share with the largest smallest gain over the
    better of the average baseline and the tensor alone (per measure), and the table behind them. The scale
    model is the one whose prediction of a left-out track's quantile function errs least (:func:`scale_losses`,
    additive on a tie): how the cells' distributions differ is a question of those distributions, and every
    refit below maps onto the scale it gives. With several ``regressors``, each
    is refitted and scored so, and the one whose best candidate has the largest smallest gain is kept (the
    first on a tie). With ``neighbours``, each regression is first fitted with each of :func:`neighbour_counts`
    nearest cells, and the count with the lowest held-out loss of the loss it is fitted with (peak-weighted
    squared error, the fewest on a tie) is the one scored: how many features a regression reads is a question
    of its fit, and the measures then choose how to mix it.

    Each validation track is left out of everything (quantile reference, scale model, its assay's
    ridge), predicted at every :data:`BLENDS` weight, and scored with :class:`ObservedTrack` on the
    sample; the baseline is the raw average of its assay over the other input cells, as predictd reports.
    The best blend is then mixed with the tensor's imputation of the track at each of
    :data:`TENSOR_SHARES`. The criterion is :func:`smallest_gain` of the means over the validation tracks,
    against a reference that takes each measure's better mean of the average and of the tensor alone (share
    1): a candidate gains on a measure only by beating both, so where the tensor model is the stronger
    imputation of some measure (on a large grid, the peaks it predicts), the chosen mix keeps that.

    The tensor is judged only on tracks its models never trained on (``tensor`` not NaN), as a target is
    imputed: a model's left-out prediction of its own training track is far too good on a small grid. When
    such tracks can fill the validation (as many as without the condition: a cross-validated ensemble, or a
    large grid's validation tracks), they are the validation tracks; otherwise (one model on a small grid)
    the tensor cannot be judged: it gets no share and the average alone is the reference.
    With no track to validate on, blend 0.5, no tensor share and no neighbours.

    Parameters
    ----------
    tensor : list of ndarray
        Per chunk, shape (n_bins, len(inputs)): the tensor ensemble's imputation of each input from members
        whose C and A never saw it, genome factors solved without it
        (:func:`~predictd_core.impute.ensemble.left_out_chunk` with ``unseen_only``); NaN where every member
        trained on it.
    tables : ndarray, optional
        The inputs' :func:`quantile_tables` when already computed.
    regressors : tuple of str
        Of :data:`~predictd_core.impute.refine.regression.REGRESSORS`.
    stacked : list of ndarray, optional
        The trees' tensor feature, as :func:`~predictd_core.impute.refine.regression.fit_refiner`'s
        ``left_out`` (every member's left-out imputation); needed with ``"gbt"``, default ``tensor``.
    neighbours : int
        The most nearest cells' tracks a regression may read (:func:`neighbour_counts` are tried); the cells'
        similarity is that of all the inputs, which for a left-out track's assay does not read that assay.
    """
    stacked = tensor if stacked is None else stacked
    unseen = np.logical_and.reduce([~np.isnan(part).any(axis=0) for part in tensor])
    held = inner_tracks(layout, inputs, limit)
    judged = inner_tracks(layout, inputs, limit, unseen)
    tensor_judged = judged.size == held.size > 0
    if tensor_judged:
        held = judged
    if held.size == 0:
        return BlendValidation(0.5, 0.0, (), (), regressors[0])
    candidates = [(regressor, count) for regressor in regressors for count in neighbour_counts(neighbours)]
    if tables is None:
        tables = quantile_tables(chunks, inputs)  # a track's quantiles do not depend on the others: once
    scales = scale_losses(tables, layout, inputs, held)
    scale = min(SCALE_MODELS, key=lambda model: (scales[model], SCALE_MODELS.index(model)))
    everyone = prepared_refiner(layout, inputs, tables)
    normalized = [everyone.normalized(chunk) for chunk in chunks]
    similarity = cell_similarity(normalized, layout, inputs) if neighbours else None
    tracks, baseline = {candidate: [] for candidate in candidates}, []
    losses = {candidate: [] for candidate in candidates}
    for j in held:
        cell, assay = int(layout.cell_of[inputs[j]]), int(layout.assay_of[inputs[j]])
        rest = np.delete(inputs, j)
        prepared = replace(prepared_refiner(layout, rest, np.delete(tables, j, axis=0), scale=scale),
                           neighbours=neighbours, similarity=similarity)
        moved = np.flatnonzero(layout.assay_of[rest] == assay)  # without j only its assay's reference moves
        features = []
        for chunk, Z in zip(chunks, normalized):
            Z = np.delete(Z, j, axis=1)
            Z[:, moved] = prepared.normalized(chunk, moved)
            features.append(ChunkFeatures(Z, layout, rest, prepared.nearest))
        observed = np.concatenate([chunk[:, inputs[j]] for chunk in chunks])
        others = layout.same_assay_columns(rest, inputs[j])
        with np.errstate(all="ignore"):
            raw_average = np.concatenate([np.nanmean(chunk[:, others], axis=1) for chunk in chunks])
        seen = ~np.isnan(observed) & ~np.isnan(raw_average)
        truth = ObservedTrack(observed[seen])  # sorted once, scored at every candidate
        baseline.append(truth.measures(raw_average[seen], rank_correlation=False))
        left_out = np.concatenate([part[:, j] for part in tensor])
        systems = ridge_systems(features, layout, rest, np.array([assay])) if "ridge" in regressors else None
        weights, tensor_seen, average = peak_weights(observed[seen]), left_out[seen], None
        for regressor, count in candidates:
            if regressor == "gbt":
                trees = tree_models(features, replace(prepared, neighbours=count),
                                    [np.delete(part, j, axis=1) for part in stacked], np.array([assay]))
                refiner = replace(prepared, regressor="gbt", trees=trees, neighbours=count)
            else:
                refiner = replace(prepared, weights=solve_ridges(systems, len(layout.assays), count, ridge),
                                  neighbours=count)
            predicted, averages = zip(*(refiner.regression(chunk, cell, np.array([assay]), part[:, [j]])
                                        for chunk, part in zip(features, stacked)))
            if average is None:  # every candidate's: the other cells' mean does not depend on the regression
                average = np.concatenate(averages)[seen, 0]
            track = _LeftOutTrack(cell, assay, refiner, truth, np.concatenate(predicted)[seen, 0], average, tensor_seen)
            regression_only = refiner.combine(track.regression, average, tensor_seen, cell, assay, 1.0, 0.0)
            losses[regressor, count].append(float(np.average(np.square(regression_only - observed[seen]),
                                                             weights=weights)))
            tracks[regressor, count].append(track)
    # the regression's features (how many nearest cells it reads) by its own held-out loss, before the mix
    loss = {candidate: float(np.mean(values)) for candidate, values in losses.items()}
    counts = {regressor: min(neighbour_counts(neighbours), key=lambda count: loss[regressor, count])
              for regressor in regressors}
    candidates = [(regressor, counts[regressor]) for regressor in regressors]
    tracks = {candidate: tracks[candidate] for candidate in candidates}
    base = _mean_scores(baseline)
    # the tensor alone (share 1; the blend does not matter there) is the other imputation to beat: each
    # measure's reference is the better of it and the average
    alone = _mean_scores([track.scores(0.0, 1.0) for track in next(iter(tracks.values()))]) if tensor_judged else base
    reference = {m: _better(m, base[m], alone[m]) for m in SCORED}
    shares = TENSOR_SHARES if tensor_judged else ()

    def row(left_out: list[_LeftOutTrack], blend: float, share: float) -> dict:
        # at share 1 every candidate is the tensor alone, whatever the regression and blend: scored above
        means = alone if share == 1.0 else _mean_scores([track.scores(blend, share) for track in left_out])
        return {"blend": float(blend), "tensor": float(share), "min_gain": smallest_gain(means, reference), **means}

    tables = {}
    for candidate, left_out in tracks.items():
        table = [row(left_out, blend, 0.0) for blend in BLENDS]
        best_blend = max(table, key=lambda entry: entry["min_gain"])["blend"]
        tables[candidate] = table + [row(left_out, best_blend, share) for share in shares]
    gains = {candidate: max(entry["min_gain"] for entry in table) for candidate, table in tables.items()}
    chosen = max(candidates, key=lambda candidate: (gains[candidate], -candidates.index(candidate)))
    best = max(tables[chosen], key=lambda entry: entry["min_gain"])
    regressor, count = chosen
    return BlendValidation(best["blend"], best["tensor"], tuple(int(k) for k in inputs[held]),
                           tuple(tables[chosen]) + ({"blend": None, "tensor": None, "min_gain": 0.0, **base},),
                           regressor, {r: float(gains[r, counts[r]]) for r in regressors},
                           count, {c: loss[regressor, c] for c in neighbour_counts(neighbours)}, scale, scales)


def _better(measure: str, first: float, second: float) -> float:
    """The better of two means of ``measure``; where one is NaN (undefined), the other."""
    pair = np.array([first, second])
    if np.isnan(pair).all():
        return float("nan")
    return float(np.nanmin(pair) if lower_is_better(measure) else np.nanmax(pair))


def _mean_scores(rows: list[dict]) -> dict[str, float]:
    """The mean of each :data:`SCORED` measure over ``rows``."""
    return {m: float(np.mean([row[m] for row in rows])) for m in SCORED}


def smallest_gain(scores: dict[str, float], baseline: dict[str, float]) -> float:
    """The smallest share of the baseline's error that ``scores`` close, across :data:`SCORED`.

    Every measure is read as an error: the MSEs as they are, the others (correlations, overlaps and AUCs,
    at most 1) as ``1 - score``. A gain is ``(baseline error - error) / baseline error``: a tenth of the
    error closed counts the same on an MSE and on an AUC near its ceiling, where a change relative to the
    score itself would be tiny and every candidate would tie. A baseline error of 0 makes any change
    infinite, any tie 0; a measure that is NaN on either side (a constant track has no correlation) is
    left out; -inf when none is left."""
    gains = []
    for measure in SCORED:
        if lower_is_better(measure):
            before, after = baseline[measure], scores[measure]
        else:
            before, after = 1.0 - baseline[measure], 1.0 - scores[measure]
        closed = before - after
        if not np.isnan(closed):
            if before:
                gains.append(closed / abs(before))
            else:
                gains.append(0.0 if closed == 0 else float(np.copysign(np.inf, closed)))
    return min(gains, default=-np.inf)
