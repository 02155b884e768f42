"""Model settings: rank, solver, PREDICTD's L2 penalties and stopping rules, validated once."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PENALTY_NAMES = ("rc", "ra", "ri", "ri2", "rbc", "rba", "rbi")
# PREDICTD trained each model on ~1.31 M bins (the ENCODE pilot regions, ~1% of hg19) and solved the rest of the
# genome's factors afterwards. What training fits genome-wide is C and A (151 rows of K = 100 at Roadmap scale); on
# 1.31 M bins each row still rests on millions of entries, while every sweep costs in proportion to the bins.
# 20 chunks of 65,536 bins.
TRAIN_BINS = 1_310_720

# ``preset: predictd-2018``: the original's training (Durham et al. 2018; ../shared/docs/predictd-reference.md):
# NAdam-SGD at rank 100 with its penalties (the field defaults), cell factors shrunk toward 0, stopping after
# 35 evaluations without a new minimum and at iteration 1000 at the latest; its imputations are the tensor
# ensemble's, not refined.
PRESETS: dict[str, dict] = {
    "predictd-2018": {"solver": "nadam-sgd", "rank": 100, "cell_shrinkage": "zero", "patience": 35, "max_iters": 1000,
                      "refine": {"enabled": False}},
}


class Penalties(BaseModel):
    """PREDICTD's L2 penalties, given as its command-line flags were (unscaled).

    ``rc`` and ``ra`` are divided by ``rank * n_cells`` and ``rank * n_assays`` and ``ri`` by
    ``rank * n_bins`` before use, as ``train_model.py`` did; ``ri2`` (the ridge on genome factors)
    is used as it is. Each scaled penalty applies per training entry that touches the row, which is
    what PREDICTD's per-sample SGD descends and what Spark's ALS-WR calls weighted lambda.
    """

    model_config = ConfigDict(extra="forbid")

    rc: float = Field(3.66, ge=0, description="L2 on cell factors C (scaled by rank*n_cells)")
    ra: float = Field(1.23e-7, ge=0, description="L2 on assay factors A (scaled by rank*n_assays)")
    ri: float = Field(1.23e-5, ge=0, description="L2 on genome factors in nadam-sgd (scaled by rank*n_bins)")
    ri2: float = Field(2.9, ge=0, description="ridge lambda on genome factors in the closed-form G step")
    rbc: float = Field(0.0, ge=0, description="L2 on cell biases")
    rba: float = Field(0.0, ge=0, description="L2 on assay biases")
    rbi: float = Field(0.0, ge=0, description="L2 on bin biases (nadam-sgd)")


class RefineSettings(BaseModel):
    """The refinement stage (:mod:`predictd_core.impute.refine`): each cell's own tracks sharpen its imputations."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="refine imputations with the cell's own tracks (false: the tensor "
                                            "ensemble's values, as PREDICTD)")
    ridge: float = Field(1000.0, ge=0, description="L2 penalty of each assay's regression")
    sample_bins: int = Field(524_288, ge=1, description="bins (stretches spread over the genome) the stage is "
                                                       "fitted and validated on, in the driver; fewer when that "
                                                       "would exceed 16.8 M values (Roadmap: ~16,500 bins)")
    inner_tracks: int = Field(20, ge=0, description="measured tracks left out, one at a time, to choose the blend "
                                                   "of regression and average and the tensor model's share")
    neighbours: int = Field(4, ge=0, description="at most this many of the other cells most similar to a pair's "
                                                "cell (mean correlation over the other assays both measure) lend "
                                                "their tracks of its assay as features of its regression, as in "
                                                "ChromImpute; the inner validation picks how many (0 and the powers "
                                                "of two up to it)")
    regressor: Literal["ridge", "gbt", "auto"] = Field(
        "ridge", description="each assay's regression: a ridge on the window features; 'gbt', gradient-boosted "
                             "trees (LightGBM) on the same features and the tensor ensemble's imputation; 'auto', "
                             "whichever the inner validation prefers (it then fits both). The trees need the extra `trees` (LightGBM), "
                             "which the cloud images leave out")


class ModelSettings(BaseModel):
    """What to fit and how. Defaults are PREDICTD's, except the solver (exact ALS).

    ``rank`` defaults to PREDICTD's ratio of factors to training experiments (K = 100 for about 700
    training experiments, so K = |T| / 7), capped at its 100, and at least the number of assays so
    each assay can have a direction of its own (Roadmap: 24 assays, K = 100 either way). Near
    K = |T| every bin's ridge solve reproduces its training tracks and the factors stop generalising.
    """

    model_config = ConfigDict(extra="forbid")

    preset: Literal[tuple(PRESETS)] | None = Field(
        None, description="start from a named configuration (fields given beside it override it): "
                          "'predictd-2018' is the original PREDICTD's training, for comparison")
    rank: int | None = Field(None, ge=1, description="latent factors K; default min(100, max(assays, training experiments / 7))")
    solver: Literal["als", "nadam-sgd"] = "als"
    cell_shrinkage: Literal["mean", "zero"] = Field(
        "mean", description="als: shrink cell factors toward the mean cell (default) or toward 0 (PREDICTD)")
    penalties: Penalties = Penalties()
    seed: int = Field(123, description="factor initialisation seed (PREDICTD's --factor_init_seed)")
    max_iters: int = Field(60, ge=1, description="ALS sweeps, or SGD rounds, at most")
    patience: int = Field(10, ge=1, description="stop after this many sweeps without a better validation MSE "
                                               "(PREDICTD waited 35 evaluations; ALS moves further per sweep)")
    tol: float = Field(1e-4, ge=0, description="relative validation-MSE gain that counts as better")
    validation_fraction: float = Field(0.125, gt=0, lt=1,
                                       description="share of training experiments used to stop (one of 8 folds)")
    inner_iters: int = Field(3, ge=1, description="C/A/bias alternations per ALS sweep (driver only)")
    train_bins: int = Field(TRAIN_BINS, ge=1, description=(
        "bins a model trains on, at most: whole chunks spread evenly over the genome (all bins of a smaller "
        "store); imputation still solves every bin's genome factors. PREDICTD trained on ~1.31 M bins (~1% of hg19)"))
    refine: RefineSettings = RefineSettings()
    # nadam-sgd only (PREDICTD's flags)
    learning_rate: float = Field(0.005, gt=0)
    beta1: float = Field(0.9, gt=0, lt=1)
    beta2: float = Field(0.999, gt=0, lt=1)
    epsilon: float = Field(1e-8, gt=0)
    batch_size: int = Field(5000, ge=1, description="local SGD steps per partition per round")
    lrate_search_num: int = Field(3, ge=0, description="learning-rate halvings on a validation plateau")

    @model_validator(mode="before")
    @classmethod
    def _preset_under_given_fields(cls, data):
        """A preset's values, then the fields given explicitly on top."""
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            data = PRESETS[data["preset"]] | data
        return data

    @model_validator(mode="before")
    @classmethod
    def _flat_penalties(cls, data):
        """Accept ``rc: 3.66`` beside ``rank`` as well as under ``penalties:``."""
        if isinstance(data, dict) and any(name in data for name in PENALTY_NAMES):
            data = dict(data)
            nested = dict(data.get("penalties") or {})
            for name in PENALTY_NAMES:
                if name in data:
                    nested[name] = data.pop(name)
            data["penalties"] = nested
        return data

    def resolved_rank(self, n_train_experiments: int, n_assays: int) -> int:
        """The rank used for a compendium with this many training experiments and assays."""
        if self.rank is not None:
            return self.rank
        return max(1, min(100, max(n_assays, n_train_experiments // 7)))
