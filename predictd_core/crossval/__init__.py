"""PREDICTD's cross-validation: experiments dealt into test x validation folds, the folds file, and one model
per (test fold, validation fold) trained, saved, extended and gathered into the ensembles that impute."""

from predictd_core.crossval.dealing import extend_folds, make_folds
from predictd_core.crossval.fold_models import (cv_ensemble, extend_fold_models, fold_experiments, folds_path,
                                                is_trained, load_fold_models, model_folder, model_name, plan_folds,
                                                require_folds, sweep_note, test_fold_targets, train_fold)
from predictd_core.crossval.folds import Folds
from predictd_core.crossval.folds_file import load_folds, save_folds

__all__ = ["Folds", "cv_ensemble", "extend_fold_models", "extend_folds", "fold_experiments", "folds_path",
           "is_trained", "load_fold_models", "load_folds", "make_folds", "model_folder", "model_name", "plan_folds",
           "require_folds", "save_folds", "sweep_note", "test_fold_targets", "train_fold"]
