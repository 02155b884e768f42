"""The hold-out design is a Latin square of the real pilot's grid, and bad designs are refused."""

import pytest

from predictd_core.errors import PredictdInputError
from predictd_core.tracks.table import read_tracks_table

from bench.accuracy.latin_square import (CELLS, DESIGN, KEPT_BACK, MARKS, PILOT_TARGETS, SQUARES, check_latin_square,
                                        design_squares, kept_back_squares, select_squares)


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


def test_the_five_cyclic_squares_hold_out_every_real_pilot_track_exactly_once(pilot_dir):
    tracks = read_tracks_table(pilot_dir / "tracks.tsv")
    cells = sorted({t.cell_type for t in tracks})
    marks = sorted({t.assay for t in tracks})
    assert [square.name for square in SQUARES] == [f"cyclic-{s}" for s in range(5)]
    held_out = [target for square in SQUARES for target in square.targets]
    assert len(held_out) == 25 and sorted(held_out) == sorted(t.name for t in tracks)
    for square in SQUARES:
        assert check_latin_square(square.targets, cells, marks, square.name) == square.targets
    # cyclic: cell i (in CELLS order) takes mark (i + s) mod 5 of MARKS
    assert SQUARES[3].targets[4] == f"{CELLS[4]}:{MARKS[(4 + 3) % 5]}" == "E117:H3K4me3"
    assert SQUARES[1].targets == ("E003:H3K4me1", "E017:H3K4me3", "E065:H3K36me3", "E116:H3K27me3", "E117:H3K9me3")
    assert sorted(CELLS) == cells and sorted(MARKS) == marks


def test_the_historical_square_is_cyclic_0_a_design_square():
    assert PILOT_TARGETS == ("E003:H3K9me3", "E017:H3K4me1", "E065:H3K4me3", "E116:H3K36me3", "E117:H3K27me3")
    assert SQUARES[0].targets == PILOT_TARGETS and SQUARES[0].role == DESIGN


def test_design_and_kept_back_squares_split_the_tracks():
    design = {t for square in design_squares() for t in square.targets}
    kept = {t for square in kept_back_squares() for t in square.targets}
    assert [s.name for s in design_squares()] == ["cyclic-0", "cyclic-1"]
    assert [s.name for s in kept_back_squares()] == ["cyclic-2", "cyclic-3", "cyclic-4"]
    assert len(design) == 10 and len(kept) == 15 and design.isdisjoint(kept)
    assert {s.role for s in SQUARES} == {DESIGN, KEPT_BACK}


def test_a_run_scores_the_design_squares_unless_the_kept_back_ones_are_asked_for_all_together():
    assert select_squares() == design_squares()
    assert select_squares(["cyclic-1"]) == (SQUARES[1],)
    assert select_squares(kept_back=True) == kept_back_squares()
    for name in ("cyclic-2", "cyclic-3", "cyclic-4"):
        with pytest.raises(ValueError, match=f"{name} is kept back"):
            select_squares(["cyclic-0", name])
    with pytest.raises(ValueError, match="unknown square 'cyclic-5'"):
        select_squares(["cyclic-5"])
    with pytest.raises(ValueError, match="all together"):
        select_squares(["cyclic-0"], kept_back=True)
