"""Cross-validation folds: balance, the training guarantee, partitions, determinism and the folds file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from predictd_core.crossval import Folds, extend_folds, load_folds, make_folds, save_folds
from predictd_core.crossval.dealing import imbalance_score
from predictd_core.crossval.folds_file import FORMAT
from predictd_core.errors import PredictdInputError
from predictd_core.model.factors import Layout
from predictd_core.simulate import load_roadmap_layout
from predictd_core.tracks.table import read_tracks_table

ROADMAP_LAYOUT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "roadmap-layout"


def _layout(pairs: list[tuple[str, str]]) -> Layout:
    cells = tuple(dict.fromkeys(c for c, _ in pairs))
    assays = tuple(dict.fromkeys(a for _, a in pairs))
    return Layout(cells, assays, np.array([cells.index(c) for c, _ in pairs], dtype=np.int64),
                  np.array([assays.index(a) for _, a in pairs], dtype=np.int64))


@pytest.fixture(scope="module")
def roadmap() -> Layout:
    """The real Roadmap layout: 127 cell types x 24 assays, 1,014 observed, cell-major."""
    cells, assays, observed, _ = load_roadmap_layout(ROADMAP_LAYOUT)
    return _layout([(c, a) for c in cells for a in assays if (c, a) in observed])


@pytest.fixture(scope="module")
def roadmap_folds(roadmap) -> Folds:
    return make_folds(roadmap, n_test=5, n_valid=8, seed=0, tries=500)


def _counts(group: np.ndarray, fold: np.ndarray, n_folds: int) -> np.ndarray:
    """(groups, folds) counts of the entries with fold >= 0."""
    keep = fold >= 0
    out = np.zeros((int(group.max()) + 1, n_folds), dtype=np.int64)
    np.add.at(out, (group[keep], fold[keep]), 1)
    return out


def _assert_partitions(folds: Folds) -> None:
    n = len(folds.experiments)
    assert set(np.unique(folds.test_fold)) <= set(range(-1, folds.n_test))
    for i in range(folds.n_test):
        assert (folds.test_fold == i).any()
        rest = (folds.test_fold >= 0) & (folds.test_fold != i)
        # valid folds of test fold i partition exactly the non-pinned experiments outside it
        assert np.array_equal(folds.valid_fold[i] >= 0, rest)
        assert set(folds.valid_fold[i, rest]) == set(range(folds.n_valid))
        for j in range(folds.n_valid):
            train, valid, test = folds.columns(i, j)
            assert np.array_equal(np.sort(np.concatenate([train, valid, test])), np.arange(n))
            assert np.array_equal(test, np.flatnonzero(folds.test_fold == i))
            assert np.array_equal(valid, np.flatnonzero(folds.valid_fold[i] == j))
            assert set(folds.pinned) <= set(train)


def _assert_training_everywhere(layout: Layout, folds: Folds) -> None:
    """Every model trains on >= 1 experiment of every cell type and assay that has one."""
    for i, j in folds.models():
        train, _, _ = folds.columns(i, j)
        assert set(layout.cell_of[train]) == set(layout.cell_of), (i, j)
        assert set(layout.assay_of[train]) == set(layout.assay_of), (i, j)


def _spread(group: np.ndarray, fold: np.ndarray, n_folds: int) -> int:
    counts = _counts(group, fold, n_folds)
    return int((counts.max(axis=1) - counts.min(axis=1)).max())


# --------------------------------------------------------------------------- the real Roadmap layout

def test_roadmap_test_and_validation_folds_are_exactly_balanced(roadmap, roadmap_folds):
    folds = roadmap_folds
    assert len(folds.experiments) == 1014 and folds.pinned.size == 0  # every line has >= 5 experiments
    assert sorted(np.bincount(folds.test_fold)) == [202, 203, 203, 203, 203]
    # each cell type and assay is spread over the test folds as evenly as its count allows
    assert _spread(roadmap.cell_of, folds.test_fold, 5) <= 1
    assert _spread(roadmap.assay_of, folds.test_fold, 5) <= 1
    bound = (-(-np.bincount(roadmap.cell_of) // 5)).sum() + (-(-np.bincount(roadmap.assay_of) // 5)).sum()
    assert imbalance_score(roadmap.cell_of, roadmap.assay_of, folds.test_fold, 5) == bound == 497
    for i in range(5):
        sizes = np.bincount(folds.valid_fold[i][folds.valid_fold[i] >= 0], minlength=8)
        assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 1014 - (folds.test_fold == i).sum()
        assert _spread(roadmap.cell_of, folds.valid_fold[i], 8) <= 1
        assert _spread(roadmap.assay_of, folds.valid_fold[i], 8) <= 1


def test_predictd_search_alone_is_far_from_balanced(roadmap):
    """Why the exact balancing: PREDICTD's best-of-N round-robin deal leaves wide gaps."""
    from predictd_core.crossval.dealing import _best_of_tries

    fold = _best_of_tries(roadmap.cell_of, roadmap.assay_of, 127, 24, 5, 500, np.random.default_rng(0))
    assert imbalance_score(roadmap.cell_of, roadmap.assay_of, fold, 5) > 497 + 50
    assert _spread(roadmap.assay_of, fold, 5) >= 5


def test_roadmap_partitions_and_every_model_keeps_training_data(roadmap, roadmap_folds):
    _assert_partitions(roadmap_folds)
    _assert_training_everywhere(roadmap, roadmap_folds)
    train, valid, test = roadmap_folds.columns(0, 0)
    assert test.size in (202, 203) and valid.size in (101, 102) and train.size == 1014 - test.size - valid.size


def test_roadmap_5x8_with_predictds_2000_tries_reaches_the_bound_on_another_seed(roadmap):
    folds = make_folds(roadmap, n_test=5, n_valid=8, seed=3, tries=2000)
    bound = (-(-np.bincount(roadmap.cell_of) // 5)).sum() + (-(-np.bincount(roadmap.assay_of) // 5)).sum()
    assert imbalance_score(roadmap.cell_of, roadmap.assay_of, folds.test_fold, 5) == bound
    assert _spread(roadmap.cell_of, folds.test_fold, 5) <= 1 and _spread(roadmap.assay_of, folds.test_fold, 5) <= 1
    _assert_training_everywhere(roadmap, folds)


def test_same_seed_same_folds_other_seed_other_folds(roadmap, roadmap_folds):
    again = make_folds(roadmap, n_test=5, n_valid=8, seed=0, tries=500)
    assert again == roadmap_folds
    other = make_folds(roadmap, n_test=5, n_valid=8, seed=1, tries=500)
    assert other != roadmap_folds
    assert (other.test_fold != roadmap_folds.test_fold).mean() > 0.5


# --------------------------------------------------------------------------- small and awkward compendia

def test_pilot_grid_5x2_is_a_latin_square_of_tests(pilot_dir):
    layout = Layout.from_experiments(read_tracks_table(pilot_dir / "tracks.tsv"))
    assert (len(layout.cells), len(layout.assays), layout.cell_of.size) == (5, 5, 25)
    folds = make_folds(layout, n_test=5, n_valid=2, seed=0)
    _assert_partitions(folds)
    _assert_training_everywhere(layout, folds)
    # 5 cells x 5 assays over 5 test folds: each test fold holds one experiment of every cell and assay
    assert (_counts(layout.cell_of, folds.test_fold, 5) == 1).all()
    assert (_counts(layout.assay_of, folds.test_fold, 5) == 1).all()
    for i, j in folds.models():
        train, valid, test = folds.columns(i, j)
        assert (train.size, valid.size, test.size) == (10, 10, 5)
        assert (np.bincount(layout.cell_of[train], minlength=5) == 2).all()
        assert (np.bincount(layout.assay_of[train], minlength=5) == 2).all()


@pytest.mark.parametrize("n_test,n_valid,per_line", [(5, 8, 3), (3, 2, 3), (2, 2, 4), (2, 8, 4)])
def test_lines_at_the_smallest_safe_size_keep_training_data(n_test, n_valid, per_line):
    """Sparse layouts where every cell type and assay has exactly the fewest experiments that need no pin.

    Each cell type of ``per_line`` experiments loses at most one (two for 2 test folds) to a test
    fold and one more to a validation fold; one is always left. A random deal would often take all.
    """
    n = 40
    pairs = [(f"C{c:02d}", f"A{(c + k * 7) % n:02d}") for c in range(n) for k in range(per_line)]
    layout = _layout(pairs)
    assert set(np.bincount(layout.cell_of)) == set(np.bincount(layout.assay_of)) == {per_line}
    for seed in range(5):
        folds = make_folds(layout, n_test=n_test, n_valid=n_valid, seed=seed, tries=50)
        assert folds.pinned.size == 0
        _assert_partitions(folds)
        _assert_training_everywhere(layout, folds)


def test_random_sparse_layouts_keep_every_guarantee():
    rng = np.random.default_rng(11)
    for trial in range(6):
        grid = rng.random((30, 12)) < rng.uniform(0.15, 0.6)
        pairs = [(f"C{c}", f"A{a}") for c, a in zip(*np.nonzero(grid))]
        layout = _layout(pairs)
        folds = make_folds(layout, n_test=5, n_valid=8, seed=trial, tries=20)
        _assert_partitions(folds)
        _assert_training_everywhere(layout, folds)
        held = folds.test_fold >= 0
        for group in (layout.cell_of, layout.assay_of):
            assert _spread(group[held], folds.test_fold[held], 5) <= 1
        # a pin only where a cell type or assay has fewer than 3 experiments
        small_cell = np.bincount(layout.cell_of) < 3
        small_assay = np.bincount(layout.assay_of) < 3
        pinned = folds.pinned
        assert (small_cell[layout.cell_of[pinned]] | small_assay[layout.assay_of[pinned]]).all()
        for small, group in ((small_cell, layout.cell_of), (small_assay, layout.assay_of)):
            for g in np.flatnonzero(small):
                assert np.isin(np.flatnonzero(group == g), pinned).any()


def test_a_cell_type_with_one_or_two_experiments_is_pinned_to_training():
    """PREDICTD kept starved rows in training (after the fact); here one experiment is pinned up front."""
    pairs = [(f"C{c}", f"A{a}") for c in range(6) for a in range(6)] + [("LONE", "A0"), ("PAIR", "A1"),
                                                                         ("PAIR", "A2")]
    layout = _layout(pairs)
    folds = make_folds(layout, n_test=5, n_valid=8, seed=0, tries=50)
    lone, pair = folds.experiments.index("LONE:A0"), [folds.experiments.index(f"PAIR:A{k}") for k in (1, 2)]
    assert folds.test_fold[lone] == -1 and (folds.valid_fold[:, lone] == -1).all()
    assert sorted(folds.test_fold[pair] == -1) == [False, True]  # one pinned, the other tested
    assert set(folds.pinned) == {lone, *[p for p in pair if folds.test_fold[p] == -1]}
    _assert_partitions(folds)
    _assert_training_everywhere(layout, folds)


def test_too_few_experiments_for_the_scheme_is_an_input_error():
    layout = _layout([(f"C{c}", f"A{a}") for c in range(3) for a in range(3)])  # 9 experiments
    make_folds(layout, n_test=3, n_valid=2)  # 3 per test fold, 6 left for 2 validation folds
    with pytest.raises(PredictdInputError, match="too few for 5 test folds x 8 validation folds") as caught:
        make_folds(layout, n_test=5, n_valid=8)
    assert caught.value.field == "folds"
    with pytest.raises(PredictdInputError) as caught:
        make_folds(_layout([("C0", "A0")]), n_test=2, n_valid=2)  # the only experiment must stay in training
    assert caught.value.field == "folds"


def test_a_single_test_fold_deals_only_validation_folds():
    """n_test 1: the holdout targets are the test set; the 8 models train on all but one validation fold."""
    pairs = [(f"C{c}", f"A{a}") for c in range(5) for a in range(4)] + [("LONE", "A0")]  # a Latin square's 20 + 1
    layout = _layout(pairs)
    folds = make_folds(layout, n_test=1, n_valid=8, seed=0, tries=50)
    lone = folds.experiments.index("LONE:A0")
    assert (folds.test_fold == -1).all() and folds.models() == [(0, j) for j in range(8)]
    assert folds.pinned.tolist() == [lone]  # the only cell type with one experiment stays in training
    dealt = np.flatnonzero(folds.valid_fold[0] >= 0)
    assert dealt.tolist() == [e for e in range(len(pairs)) if e != lone]
    assert sorted(np.bincount(folds.valid_fold[0, dealt]).tolist()) == [2, 2, 2, 2, 3, 3, 3, 3]  # 20 dealt evenly
    for j in range(8):
        train, valid, test = folds.columns(0, j)
        assert test.size == 0 and np.array_equal(valid, np.flatnonzero(folds.valid_fold[0] == j))
        assert np.array_equal(np.sort(np.concatenate([train, valid])), np.arange(len(pairs)))
    assert _spread(layout.cell_of[dealt], folds.valid_fold[0, dealt], 8) <= 1
    assert _spread(layout.assay_of[dealt], folds.valid_fold[0, dealt], 8) <= 1
    _assert_training_everywhere(layout, folds)


def test_a_single_test_fold_round_trips_extends_and_refuses_a_tested_experiment(tmp_path):
    layout = _layout([(f"C{c}", f"A{a}") for c in range(5) for a in range(4)])
    folds = make_folds(layout, n_test=1, n_valid=8, seed=3, tries=20)
    path = tmp_path / "folds.json"
    save_folds(folds, path)
    assert load_folds(path, layout) == folds
    grown = extend_folds(folds, list(folds.experiments) + ["C5:A0", "C5:A1", "C0:A4"])
    assert (grown.test_fold == -1).all() and np.array_equal(grown.valid_fold[0, :20], folds.valid_fold[0])
    # the new assay A4's only experiment stays in training; the new cell type C5 has two, enough to validate
    # on one while training on the other, since no test fold takes any
    assert [grown.experiments[e] for e in grown.pinned] == ["C0:A4"]
    _assert_training_everywhere(_layout([tuple(name.split(":")) for name in grown.experiments]), grown)
    document = json.loads(path.read_text())
    document["test_fold"][0] = 0
    path.write_text(json.dumps(document))
    with pytest.raises(PredictdInputError, match="single test fold") as caught:
        load_folds(path)
    assert caught.value.field == "test_fold"


@pytest.mark.parametrize("kwargs,field", [({"n_test": 0}, "n_test"), ({"n_valid": 1}, "n_valid"),
                                          ({"tries": 0}, "tries"), ({"n_test": 2.5}, "n_test")])
def test_bad_scheme_parameters_name_the_field(roadmap, kwargs, field):
    with pytest.raises(PredictdInputError) as caught:
        make_folds(roadmap, **kwargs)
    assert caught.value.field == field


# --------------------------------------------------------------------------- the folds file

def test_save_load_round_trip(tmp_path, roadmap, roadmap_folds):
    path = tmp_path / "cv" / "folds.json"
    save_folds(roadmap_folds, path)
    document = json.loads(path.read_text())
    assert document["format"] == FORMAT and (document["n_test"], document["n_valid"], document["seed"]) == (5, 8, 0)
    assert document["experiments"][0] == f"{roadmap.cells[0]}:{roadmap.assays[roadmap.assay_of[0]]}"
    loaded = load_folds(path, layout=roadmap)
    assert loaded == roadmap_folds
    assert not loaded.test_fold.flags.writeable
    assert [p.name for p in path.parent.iterdir()] == ["folds.json"]  # no temporary left behind


def test_round_trip_keeps_pins(tmp_path):
    layout = _layout([(f"C{c}", f"A{a}") for c in range(5) for a in range(5)] + [("LONE", "A0")])
    folds = make_folds(layout, n_test=5, n_valid=2, seed=4)
    save_folds(folds, tmp_path / "f.json")
    assert load_folds(tmp_path / "f.json") == folds and folds.pinned.size == 1


@pytest.fixture
def saved(tmp_path):
    layout = _layout([(f"C{c}", f"A{a}") for c in range(5) for a in range(5)])
    folds = make_folds(layout, n_test=5, n_valid=2, seed=0)
    path = tmp_path / "folds.json"
    save_folds(folds, path)
    return path, json.loads(path.read_text()), layout


def _starve(document: dict) -> None:
    """Put all of C0's experiments outside test fold 0 into validation fold 0 of test fold 0."""
    names = document["experiments"]
    for e, name in enumerate(names):
        if name.startswith("C0:") and document["test_fold"][e] != 0:
            document["valid_fold"][0][e] = 0


@pytest.mark.parametrize("corrupt,field", [
    (lambda d: d.update(format="predictd-folds/0"), "format"),
    (lambda d: d.pop("n_test"), "n_test"),
    (lambda d: d.update(n_valid=True), "n_valid"),
    (lambda d: d.update(seed="0"), "seed"),
    (lambda d: d.update(experiments=d["experiments"][:-1]), "test_fold"),
    (lambda d: d["experiments"].__setitem__(3, "C0-A0"), "experiments[3]"),
    (lambda d: d["experiments"].__setitem__(1, d["experiments"][0]), "experiments"),
    (lambda d: d["test_fold"].__setitem__(0, 5), "test_fold"),
    (lambda d: d["test_fold"].__setitem__(0, 1.0), "test_fold"),
    (lambda d: d.update(valid_fold=d["valid_fold"][:-1]), "valid_fold"),
    (lambda d: d["valid_fold"][2].__setitem__(0, [0]), "valid_fold"),
    (lambda d: d.update(test_fold=[e if e != 4 else 3 for e in d["test_fold"]]), "test_fold"),  # fold 4 empty
    (lambda d: d["valid_fold"][d["test_fold"][0]].__setitem__(0, 1), "valid_fold[{}]"),  # a test experiment validated
    (_starve, "valid_fold"),
])
def test_a_corrupt_folds_file_names_the_file_and_field(saved, corrupt, field):
    path, document, _ = saved
    if "{}" in field:
        field = field.format(document["test_fold"][0])
    corrupt(document)
    path.write_text(json.dumps(document))
    with pytest.raises(PredictdInputError) as caught:
        load_folds(path)
    assert caught.value.source == str(path) and caught.value.field == field


def test_an_unreadable_or_foreign_folds_file_is_an_input_error(saved, tmp_path):
    path, document, layout = saved
    path.write_text(path.read_text()[:200])  # truncated
    with pytest.raises(PredictdInputError) as caught:
        load_folds(path)
    assert (caught.value.source, caught.value.field) == (str(path), "content")
    path.write_text("[1, 2]")
    with pytest.raises(PredictdInputError, match="JSON object"):
        load_folds(path)
    with pytest.raises(PredictdInputError) as caught:
        load_folds(tmp_path / "absent.json")
    assert caught.value.field == "file"
    # folds made for another store
    path.write_text(json.dumps(document))
    other = _layout([(f"C{c}", f"A{a}") for a in range(5) for c in range(5)])  # same experiments, other order
    with pytest.raises(PredictdInputError, match="another compendium") as caught:
        load_folds(path, layout=other)
    assert caught.value.field == "experiments"
    assert load_folds(path, layout=layout).n_test == 5


# --------------------------------------------------------------------------- extending the folds of a grown compendium

def _names(layout: Layout) -> list[str]:
    return [f"{layout.cells[c]}:{layout.assays[a]}" for c, a in zip(layout.cell_of, layout.assay_of)]


@pytest.fixture(scope="module")
def grown(roadmap):
    """Roadmap without E003 (24 experiments), DNase (53) and 30 scattered experiments, then all of Roadmap.

    Returns (folds before, folds after, mask of the new experiments in Roadmap order).
    """
    names = np.array(_names(roadmap))
    scattered = np.random.default_rng(0).choice(names.size, 30, replace=False)
    is_new = ((roadmap.cell_of == roadmap.cells.index("E003")) | (roadmap.assay_of == roadmap.assays.index("DNase"))
              | np.isin(np.arange(names.size), scattered))
    old = make_folds(_layout([tuple(name.split(":")) for name in names[~is_new]]), n_test=5, n_valid=8, seed=0,
                     tries=200)
    return old, extend_folds(old, names.tolist()), is_new


def test_extended_folds_keep_every_old_assignment(grown):
    old, extended, is_new = grown
    assert (extended.n_test, extended.n_valid, extended.seed, extended.tries) == (5, 8, 0, 200)
    where = np.array([extended.experiments.index(name) for name in old.experiments])
    assert np.array_equal(np.sort(where), np.flatnonzero(~is_new))
    assert np.array_equal(extended.test_fold[where], old.test_fold)
    assert np.array_equal(extended.valid_fold[:, where], old.valid_fold)
    for i, j in old.models():  # every old model tests and validates on what it did, and trains on more
        old_train, old_valid, old_test = (set(where[k]) for k in old.columns(i, j))
        train, valid, test = (set(k) for k in extended.columns(i, j))
        assert old_test == test - set(np.flatnonzero(is_new)) and old_valid == valid - set(np.flatnonzero(is_new))
        assert old_train < train


def test_extended_folds_deal_the_new_experiments_in_balance(roadmap, grown, tmp_path):
    _, extended, is_new = grown
    _assert_partitions(extended)
    _assert_training_everywhere(roadmap, extended)
    assert extended.pinned.size == 0  # every cell type and assay of Roadmap has >= 5 experiments
    for group in (roadmap.cell_of, roadmap.assay_of):
        # the new experiments among themselves: exactly balanced; old and new together: within two
        assert _spread(group[is_new], extended.test_fold[is_new], 5) <= 1
        assert _spread(group, extended.test_fold, 5) <= 2
        for i in range(5):
            valid = extended.valid_fold[i]
            assert _spread(group[is_new], valid[is_new], 8) <= 1
            assert _spread(group, valid, 8) <= 2
    for new_row in (roadmap.cell_of == roadmap.cells.index("E003"), roadmap.assay_of == roadmap.assays.index("DNase")):
        assert np.ptp(np.bincount(extended.test_fold[new_row], minlength=5)) <= 1  # all new: balanced as fresh
    save_folds(extended, tmp_path / "folds.json")  # and they pass every check of the folds file
    assert load_folds(tmp_path / "folds.json", layout=roadmap) == extended


def test_extending_is_deterministic(grown):
    old, extended, _ = grown
    assert extend_folds(old, extended.experiments) == extended


def test_new_small_cell_types_and_assays_are_pinned_by_their_total_counts():
    base = [(f"C{c}", f"A{a}") for c in range(6) for a in range(6)] + [("SOLO", "A0")]
    old = make_folds(_layout(base), n_test=5, n_valid=8, seed=0, tries=50)
    assert old.pinned.tolist() == [36]  # SOLO:A0
    added = [("LONE", "A0"), ("PAIR", "A1"), ("PAIR", "A2"), ("SOLO", "A1"), ("NEWCELL", "NEWMARK"),
             ("C0", "A6"), ("C1", "A6"), ("C2", "A6"), ("C3", "A6")]
    pairs = added[:2] + base + added[2:]  # new experiments before, among and after the old ones
    layout = _layout(pairs)
    extended = extend_folds(old, _names(layout))
    index = {name: k for k, name in enumerate(extended.experiments)}
    pinned = {extended.experiments[k] for k in extended.pinned}
    # LONE and NEWCELL:NEWMARK alone in their row (and column); one of PAIR's two; SOLO keeps its old pin
    # and now has two experiments, so SOLO:A1 is dealt; A6 has four, none pinned
    assert {"SOLO:A0", "LONE:A0", "NEWCELL:NEWMARK"} < pinned and len(pinned) == 4
    assert len(pinned & {"PAIR:A1", "PAIR:A2"}) == 1
    assert extended.test_fold[index["SOLO:A1"]] >= 0
    assert (extended.test_fold[[index[f"C{c}:A6"] for c in range(4)]] >= 0).all()
    _assert_partitions(extended)
    _assert_training_everywhere(layout, extended)


def test_bad_extensions_are_input_errors(grown):
    old, extended, _ = grown
    names = list(extended.experiments)
    for experiments, message in (([name for name in names if name != old.experiments[0]], "missing"),
                                 (names + names[:1], f"{names[0]} is listed twice"),
                                 (list(reversed(old.experiments)), "no new experiment")):
        with pytest.raises(PredictdInputError, match=message) as caught:
            extend_folds(old, experiments)
        assert (caught.value.source, caught.value.field) == ("folds", "experiments")
    # folds that already starve a model (made by hand: no folds file passes such a split)
    valid_fold = np.array(old.valid_fold)
    c0 = np.array([name.startswith("E004:") for name in old.experiments])
    valid_fold[0, c0 & (old.test_fold != 0)] = 0
    starved = Folds(old.experiments, old.test_fold, valid_fold, 5, 8, 0, 200)
    with pytest.raises(PredictdInputError, match="E004") as caught:
        extend_folds(starved, names)
    assert caught.value.field == "valid_fold"
