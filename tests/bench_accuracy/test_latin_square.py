"""The hold-out design is a Latin square of the real pilot's grid, and bad designs are refused."""

import pytest

from predictd_core.errors import PredictdInputError
from predictd_core.tracks.table import read_tracks_table

from bench.accuracy.latin_square import PILOT_TARGETS, check_latin_square


def test_the_pilot_targets_take_every_cell_and_mark_of_the_real_pilot_once(pilot_dir):
    tracks = read_tracks_table(pilot_dir / "tracks.tsv")
    cells = sorted({t.cell_type for t in tracks})
    marks = sorted({t.assay for t in tracks})
    assert len(cells) == len(marks) == len(PILOT_TARGETS) == 5
    assert check_latin_square(PILOT_TARGETS, cells, marks) == PILOT_TARGETS
    pairs = [target.split(":") for target in PILOT_TARGETS]
    assert sorted(cell for cell, _ in pairs) == cells
    assert sorted(mark for _, mark in pairs) == marks
    assert {t.name for t in tracks} >= set(PILOT_TARGETS)  # every target is a measured track


@pytest.mark.parametrize("targets, field, says", [
    (("A:x", "B:x", "C:z"), "targets", "mark"),          # x twice, y never
    (("A:x", "A:y", "C:z"), "targets", "cell"),          # A twice, B never
    (("A:x", "B:y"), "targets", "cell"),                 # C never
    (("A:x", "B:y", "D:z"), "targets[2]", "not CELL:MARK"),
    (("A:x", "B:y", "Cz"), "targets[2]", "not CELL:MARK"),
])
def test_a_design_that_is_not_a_latin_square_is_refused(targets, field, says):
    with pytest.raises(PredictdInputError) as caught:
        check_latin_square(targets, "ABC", "xyz", "design.yaml")
    assert caught.value.source == "design.yaml" and caught.value.field == field
    assert says in caught.value.message


def test_a_grid_that_is_not_square_is_refused():
    with pytest.raises(PredictdInputError, match="as many cells as marks"):
        check_latin_square(("A:x", "B:y"), "AB", "xyz")
