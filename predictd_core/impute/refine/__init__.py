"""The refinement stage: each cell's own tracks sharpen the imputation of its missing assays.

The tensor model predicts a pair from factors shared by the whole grid, and on a small grid it
flattens peaks (``../shared/docs/predictd-reference.md``); the plain average of the same assay in
the other cells ranks peaks better but cannot see what is special about the cell. ChromImpute's
answer is a regression per target assay on local features of the cell's own tracks. This stage is
that idea, small and closed-form:

1. Every input track is *quantile-normalised* to its assay's reference distribution (the mean of the
   assay's quantile functions): sequencing depth and lab-to-lab scale no longer differ between cells.
2. For a pair (cell c, assay m), the features are the average of m over the other cells, the
   cell's other assays (measured, or their own other-cell average where not), and m's tracks in the
   k other cells most similar to c (ChromImpute's idea: similarity for m is the mean correlation of
   the two cells' tracks of the other assays both measure), each as the bin's value and its mean over
   9, 81 and 801 bins, and at each window the second-degree terms: each other assay times the average (peaks
   shared by the cell's marks and the other cells) and the squares of the average and of each other assay (a
   peak's top grows faster than its evidence). Windows stay inside the store's chunk.
3. One ridge per assay, fitted over the cells where the assay is measured, each cell's rows built
   without its own track in the average, each bin's squared error weighted by 1 + its value so that
   peaks are not regressed toward the mean (``regression.peak_weights``). Or
   (``model.refine.regressor: gbt``) gradient-boosted trees per assay (LightGBM) on the same window
   features and the tensor ensemble's imputation of the pair, with the same weights; with ``auto`` the
   inner validation below fits both and keeps the one with the larger smallest gain.
4. The refined value is ``blend * ridge + (1 - blend) * average``: the ridge wins the errors and the
   average keeps the peaks' ranks.
5. Back to the cell's own scale through the expected quantile function of (c, m): a cell + assay model
   of the measured tracks' quantile functions (a cell sequenced deeper has higher peaks in every assay),
   additive, or multiplicative on ``1 + q`` where that better predicts the quantile functions of tracks left
   out (the inner validation below chooses).
6. Mixed with the tensor ensemble's imputation of the pair: ``(1 - tensor) * refined + tensor * ensemble``.
   On a small grid the tensor model flattens peaks and gets no share; on a grid of Roadmap's size it
   knows more than the other cells' average and the cell's few marks, and keeps the share it earns.

The scale model, ``k`` (0, 1, 2 or 4 by default), ``blend`` and then ``tensor`` (and, with ``auto``, the regressor)
are chosen by inner validation, the scale model by its error on left-out tracks' quantile functions, ``k`` by the
regression's own held-out loss and the rest by the quality measures: every measured
track refitted without itself (at most ``inner_tracks`` of them), to maximise the smallest share of the error that
is closed, across the quality measures, against the better of the average baseline and the tensor alone on each:
the product's goal is to win every column against both. The tensor's imputation of a track comes only from
ensemble members that never trained on it (their validation tracks;
:func:`~predictd_core.impute.ensemble.left_out_chunk`), as a target's does: a model's C and A learned its own
training tracks, and on a small grid its left-out prediction of one is far better than its imputation of a target.
Where such tracks cannot fill the validation (one model on a small grid), the tensor is not judged and gets no
share.

Everything is fitted in the driver on stretches of the store spread evenly over the genome
(``sample_bins``, at most :data:`~predictd_core.impute.refine.stage.SAMPLE_VALUES` values); a pair is refined
only when its assay is measured in at least two input cells other than itself, else the tensor ensemble's
value stands.

Modules: ``features`` (steps 1, 2 and 5: quantile normalisation, the cell scale, window-mean features),
``regression`` (steps 3-6: the ridges or trees and the :class:`Refiner` that applies them), ``validation`` (the inner
validation that chooses ``blend`` and ``tensor``), ``stage`` (one refiner per set of ensemble members:
:func:`fit_refinement`, :class:`Refinement`) and ``record`` (``OUTPUT/refinement.json``).
"""

from predictd_core.impute.refine.record import read_refinement, refinement_path, write_refinement
from predictd_core.impute.refine.regression import Refiner, fit_refiner
from predictd_core.impute.refine.stage import Refinement, fit_refinement
from predictd_core.impute.refine.validation import SCORED, BlendValidation, choose_blend

__all__ = ["SCORED", "BlendValidation", "Refinement", "Refiner", "choose_blend", "fit_refinement", "fit_refiner",
           "read_refinement", "refinement_path", "write_refinement"]
