"""PREDICTD's cross-validation: experiments dealt into test x validation folds, the folds file, and one model
per (test fold, validation fold) trained, saved, extended and gathered into the ensembles that impute."""

from predictd_core.crossval.dealing import extend_folds, make_folds
from predictd_core.crossval.ensemble import cv_ensemble, cv_run, test_fold_targets
from predictd_core.crossval.fold_models import (extend_fold_models, folds_path, is_trained, load_fold_models,
                                                model_folder, model_name, plan_folds, require_folds, train_fold,
                                                train_missing)
from predictd_core.crossval.folds import Folds
from predictd_core.crossval.folds_file import load_folds, save_folds

__all__ = ["Folds", "cv_ensemble", "cv_run", "extend_fold_models", "extend_folds", "folds_path", "is_trained",
           "load_fold_models", "load_folds", "make_folds", "model_folder", "model_name", "plan_folds",
           "require_folds", "save_folds", "test_fold_targets", "train_fold", "train_missing"]
