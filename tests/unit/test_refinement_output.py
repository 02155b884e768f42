"""OUTPUT/refinement.json: written as strict JSON, read back only by a config that refines, a bad file named."""

from __future__ import annotations

import json
import math

import pytest

from predictd_core.config import load_config
from predictd_core.errors import PredictdInputError
from predictd_core.impute.refine import read_refinement, refinement_path, write_refinement
from tests.conftest import write_config


class RecordedRefinement:
    """The part of a fitted ``Refinement`` that write_refinement reads: its ``record()``, here with the values
    a flat track gives (a NaN correlation, and no measure left to gain on: -inf)."""

    def record(self) -> list[dict]:
        return [{"inputs": ["C1:M1", "C3:M1"], "blend": 0.3, "validated": ["C1:M1"],
                 "validation": [{"blend": 0.3, "min_gain": -math.inf, "MSEglobal": 0.25, "GWcorr": math.nan},
                                {"blend": None, "min_gain": 0.0, "MSEglobal": 0.5, "GWcorr": math.nan}],
                 "refined": ["C2:M1"]}]


def _refusing_nan(constant: str):
    raise ValueError(f"{constant} is not JSON")


def test_non_finite_measures_are_written_as_null_and_read_back(tmp_path):
    config = load_config(write_config(tmp_path))
    path = write_refinement(config, RecordedRefinement())
    assert path == refinement_path(config) == tmp_path / "out" / "refinement.json"
    document = json.loads(path.read_text(), parse_constant=_refusing_nan)
    chosen, baseline = document["refiners"][0]["validation"]
    assert chosen == {"blend": 0.3, "min_gain": None, "MSEglobal": 0.25, "GWcorr": None}
    assert baseline == {"blend": None, "min_gain": 0.0, "MSEglobal": 0.5, "GWcorr": None}
    assert read_refinement(config) == document["refiners"]


def test_a_config_without_refinement_ignores_an_earlier_runs_file(tmp_path):
    write_refinement(load_config(write_config(tmp_path)), RecordedRefinement())
    plain = load_config(write_config(tmp_path, model={"refine": {"enabled": False}}))
    assert refinement_path(plain).is_file() and read_refinement(plain) is None


def test_no_file_means_no_refinement_to_report(tmp_path):
    assert read_refinement(load_config(write_config(tmp_path))) is None


@pytest.mark.parametrize("text", ["{not json", '["a list"]', '{"refiners": {"blend": 0.5}}'])
def test_a_file_that_is_not_a_record_is_an_error_naming_it(tmp_path, text):
    config = load_config(write_config(tmp_path))
    refinement_path(config).parent.mkdir()
    refinement_path(config).write_text(text)
    with pytest.raises(PredictdInputError) as caught:
        read_refinement(config)
    assert str(refinement_path(config)) in str(caught.value) and "refiners" in str(caught.value)
