"""How honest is the tensor model's left-out imputation of its own training tracks? (real pilot)

The refinement's inner validation needs the tensor's imputation of each track it leaves out. The cheap one
(:func:`~predictd_core.solvers.als.left_out_predictions`) solves the genome factors without the track, but C
and A were fitted with it. A target is imputed by a model that never saw it, so the honest reference is a
model refitted without the track. For every training track of a square (its targets are never read), this
scores both against the track: MSE, MSE over its top 1% bins (MSE1obs) and correlation, and the same for a
model's validation tracks, which it never trained on.

    .venv/bin/python bench/tensor_left_out.py --work /tmp/tensor-left-out [--square cyclic-0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accuracy.latin_square import design_squares, kept_back_squares  # noqa: E402
from bench.accuracy.problem import prepare_problem  # noqa: E402
from predictd_core.engine.local import LocalEngine  # noqa: E402
from predictd_core.model.factors import Layout  # noqa: E402
from predictd_core.model.settings import ModelSettings  # noqa: E402
from predictd_core.solvers import als  # noqa: E402
from predictd_core.train.estimator import Predictd  # noqa: E402
from predictd_core.train.split import choose_validation  # noqa: E402


def track_scores(predicted: np.ndarray, observed: np.ndarray) -> tuple[float, float, float]:
    """MSE, MSE over the observed track's top 1% bins, Pearson correlation."""
    top = observed >= np.quantile(observed, 0.99)
    return (float(np.mean((predicted - observed) ** 2)), float(np.mean((predicted[top] - observed[top]) ** 2)),
            float(np.corrcoef(predicted, observed)[0, 1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the ingested store")
    # any square: only its training tracks are read, never its targets
    squares = {square.name: square for square in design_squares() + kept_back_squares()}
    parser.add_argument("--square", choices=sorted(squares), default="cyclic-0")
    args = parser.parse_args()
    problem = prepare_problem(args.work, targets=squares[args.square].targets, folder=args.work / args.square)
    store = problem.store
    layout = Layout.from_experiments(store.experiments)
    settings = ModelSettings()
    train, valid = choose_validation(layout, problem.training, settings.validation_fraction, settings.seed)
    engine = LocalEngine(store)
    Y = store.read_columns(problem.training)
    everything = np.full((Y.shape[0], store.n_experiments), np.nan)  # store-wide columns; targets unread
    everything[:, problem.training] = Y
    position = {int(column): j for j, column in enumerate(problem.training)}
    model = Predictd(settings).fit(engine, layout, train, valid)
    left_out = als.left_out_predictions(Y, model.factors_, layout.cell_of[problem.training],
                                        layout.assay_of[problem.training], model.ridge_)
    cheap, refitted = [], []
    for column in train:
        others = problem.training[problem.training != column]
        without = Predictd(settings).fit(engine, layout, train[train != column], valid)
        imputed = without.predict_chunk(everything, others,
                                        layout.cell_of[[column]], layout.assay_of[[column]])[:, 0]
        observed = Y[:, position[int(column)]]
        cheap.append(track_scores(left_out[:, position[int(column)]], observed))
        refitted.append(track_scores(imputed, observed))
    unseen = [track_scores(left_out[:, position[int(column)]], Y[:, position[int(column)]]) for column in valid]
    print(f"{args.square}: {Y.shape[0]:,} bins, {train.size} training and {valid.size} validation tracks, "
          f"rank {model.rank_}")
    print("| imputation of a track | tracks | MSE | MSE1obs | correlation |\n|---|---|---|---|---|")
    for label, rows in (("training track, left out of G only (C, A saw it)", cheap),
                        ("training track, model refitted without it", refitted),
                        ("validation track (never trained on), left out of G", unseen)):
        mse, top, corr = np.mean(rows, axis=0)
        print(f"| {label} | {len(rows)} | {mse:.4f} | {top:.3f} | {corr:.3f} |")


if __name__ == "__main__":
    main()
