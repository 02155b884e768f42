"""Model settings: the predictd-2018 preset and the fields given beside it."""

import pytest
import yaml

from predictd_core.config import parse_config
from predictd_core.errors import PredictdInputError
from predictd_core.model.settings import ModelSettings


def test_predictd_2018_preset_is_the_original_training():
    faithful = ModelSettings(preset="predictd-2018")
    assert (faithful.solver, faithful.rank, faithful.cell_shrinkage) == ("nadam-sgd", 100, "zero")
    assert (faithful.patience, faithful.max_iters) == (35, 1000)
    assert (faithful.learning_rate, faithful.batch_size, faithful.penalties.rc, faithful.penalties.ri2) == \
        (0.005, 5000, 3.66, 2.9)
    default = ModelSettings()
    assert (default.solver, default.rank, default.cell_shrinkage) == ("als", None, "mean")


def test_fields_given_beside_a_preset_override_it():
    settings = ModelSettings.model_validate({"preset": "predictd-2018", "rank": 20, "rc": 1.0})
    assert (settings.solver, settings.rank, settings.penalties.rc) == ("nadam-sgd", 20, 1.0)


def test_an_unknown_preset_is_a_config_error_naming_the_field():
    text = yaml.safe_dump({"tracks": "t.tsv", "chrom_sizes": "c.sizes", "model": {"preset": "predictd-2019"}})
    with pytest.raises(PredictdInputError, match="model.preset"):
        parse_config(text, "run.yaml")


def test_the_default_refines_and_the_faithful_preset_does_not():
    assert ModelSettings().refine.enabled
    assert not ModelSettings(preset="predictd-2018").refine.enabled
    assert ModelSettings(preset="predictd-2018", refine={"enabled": True, "ridge": 5}).refine.ridge == 5


def test_refinement_settings_do_not_make_fitted_models_stale():
    def digest(model):
        return parse_config(yaml.safe_dump({"tracks": "t.tsv", "chrom_sizes": "c.sizes", "model": model}),
                            "run.yaml").training_digest()

    assert digest({"refine": {"enabled": False, "ridge": 5}}) == digest({})  # fitted at imputation, not training
    assert digest({"rank": 7}) != digest({})
