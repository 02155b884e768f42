"""Dealing observed experiments into test folds and validation folds: a compendium's, or a grown one's new ones.

Both deals balance cell types and assays across folds. PREDICTD shuffled, dealt round-robin,
repeated ``--num_tries`` times and kept the draw with the lowest score
``sum over cell types of max_fold(count) + sum over assays of max_fold(count)``. That search is kept
(vectorised, ``tries`` draws), and its best draw is then made exactly balanced: the experiments are
the edges of a bipartite graph (cell type -- assay), a fold assignment is an edge colouring, and
every bipartite graph has an *equitable* colouring, one where each cell type and each assay has
counts in every pair of folds differing by at most one (de Werra 1971). ``_equalise`` reaches one by
recolouring, pair of folds by pair of folds, along alternating trails. The score then equals its
lower bound ``sum ceil(n / folds)``. On the real Roadmap layout PREDICTD's best-of-2000 draw alone
scores 631 against the bound 497, leaving a cell type up to 8 and an assay up to 16 experiments
apart between test folds, and its test-then-validation draws (1000 tries each, seeds 0-4) left 1 or 2
models without training data for some cell type every time: the case its patch existed for.

Every model keeps training data for every cell type and assay, by construction rather than by
repair. PREDICTD's ``generate_folds.py`` repaired afterwards: when a model had no training
experiment for a cell type or assay it moved validation experiments of that row or column back
into training (optionally test experiments too, ``--patch_training_zeros_with_test_allowed``). The
reference notes (section 3, known defect 7) record that this path drew a random position in the
list of available experiments but then used that position itself as the (cell, assay) coordinate,
so it moved the wrong entry -- another experiment, or an unobserved cell -- leaving the starved
row or column starved while silently taking an unrelated experiment out of its fold. (Another
version of the file in the public history moves the whole row's or column's validation experiments
instead; either way the saved folds stop being what they claim: an experiment is in no validation
fold, or a "test" experiment is trained on, and a row whose remaining experiments are all under
test stays empty.) Here nothing is moved after the draw: with the equitable deals a cell type or
assay with ``n`` experiments loses at most ``ceil(n / n_test)`` of them to a test fold and at most
``ceil(m / n_valid)`` of the ``m`` left to a validation fold, which leaves at least one in training
whenever ``n - ceil(n / n_test) >= 2``: ``n >= 3`` (``n >= 4`` for 2 test folds; ``n >= 2`` for a single
test fold, which holds none of them: the holdout targets are its test set). Every finished split is
still checked, and a violation would be a bug, not something to patch.

Smaller cell types and assays follow what PREDICTD did when a row or column would have had no
training data -- keep it in training -- but decided before the draw: one experiment of each such
cell type or assay is *pinned* (``test_fold == -1``): it is never tested or validated, every model
trains on it, and the others are dealt as usual. A cell type with a single experiment therefore
stays in training and cannot be scored; with two, one is pinned and the other is tested by a model
that learned the cell type from the pinned one. A compendium with too few experiments to fill every
test and validation fold raises :class:`PredictdInputError` (field ``folds``).

When the compendium grows, :func:`extend_folds` keeps every old experiment's folds (so fold models
already trained stay valid: each only gains training experiments) and deals the new ones by the
same rules, pins decided by the counts of the grown compendium.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from predictd_core.crossval.folds import Folds, _grid, _starved
from predictd_core.errors import PredictdInputError
from predictd_core.model.factors import Layout

_CHUNK = 256  # draws scored together by the vectorised search (memory ~ _CHUNK x n_experiments)


def make_folds(layout: Layout, n_test: int = 5, n_valid: int = 8, seed: int = 0, tries: int = 1000) -> Folds:
    """Deal the observed experiments into balanced test folds and, within each, validation folds.

    Parameters
    ----------
    layout : Layout
        The store's columns: ``layout.cell_of[e]``, ``layout.assay_of[e]`` for every experiment.
    n_test, n_valid : int
        Test folds, and validation folds per test fold (PREDICTD: 5 and 8); at least 2 validation folds.
        One test fold deals no experiment into it (every ``test_fold`` is -1): the run's holdout targets
        are the test set, and the experiments are dealt into validation folds only.
    seed : int
        Everything random (pins, shuffles, trail orders) comes from this seed.
    tries : int
        Shuffles scored per deal, the best kept before exact balancing (PREDICTD's ``--num_tries``).

    Returns
    -------
    Folds
        Guarantees, checked before returning:

        * test folds partition the non-pinned experiments, and within test fold ``i`` the
          validation folds partition the non-pinned experiments outside it; no fold is empty;
        * fold sizes differ by at most one, and so do the counts of each cell type and of each
          assay between any two test folds, and between any two validation folds of a test fold
          (among the non-pinned experiments);
        * every model ``(i, j)`` trains on at least one experiment of every cell type and every
          assay of the layout that has an observed experiment.

    Raises
    ------
    PredictdInputError
        ``n_test``, ``n_valid`` or ``tries`` out of range; or (field ``folds``) the compendium has
        too few experiments to give every test and validation fold at least one.
    """
    for name, value, low in (("n_test", n_test, 1), ("n_valid", n_valid, 2), ("tries", tries, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise PredictdInputError("folds", name, f"expected an integer >= {low}, got {value!r}")
    n_test, n_valid, tries = int(n_test), int(n_valid), int(tries)
    cell_of = np.asarray(layout.cell_of, dtype=np.int64)
    assay_of = np.asarray(layout.assay_of, dtype=np.int64)
    n_cells, n_assays = len(layout.cells), len(layout.assays)
    experiments = layout.column_names()
    rng = np.random.default_rng(seed)

    need = _needing_pins(cell_of, assay_of, n_cells, n_assays, _smallest_safe_count(n_test),
                         np.zeros(cell_of.size, dtype=bool))
    pinned = _pin(cell_of, assay_of, *need, rng)
    free = np.flatnonzero(~pinned)
    largest_test = -(-free.size // n_test) if n_test > 1 else 0  # a single test fold holds no experiment
    if free.size < n_test or free.size - largest_test < n_valid:
        raise PredictdInputError(
            "compendium", "folds",
            f"{free.size} experiment(s) can be held out ({int(pinned.sum())} more must stay in training because "
            f"their cell type or assay has too few), too few for {n_test} test folds x {n_valid} validation folds: "
            f"need at least {n_test} so no test fold is empty, and {n_valid} left after the largest test fold so "
            f"no validation fold is empty; use fewer folds")

    test_fold, valid_fold = _deal(cell_of, assay_of, n_cells, n_assays, np.full(cell_of.size, -1, dtype=np.int64),
                                  np.full((n_test, cell_of.size), -1, dtype=np.int64), ~pinned, n_valid, tries, rng)
    return Folds(experiments, test_fold, valid_fold, n_test, n_valid, int(seed), tries)


def extend_folds(folds: Folds, experiments: Sequence[str]) -> Folds:
    """The folds of a grown compendium: old experiments keep their folds, the new ones are dealt.

    Fold models trained before the compendium grew stay valid: each still tests and validates on
    what it did, and only gains training experiments (the new ones outside its folds).

    Parameters
    ----------
    folds : Folds
        The folds of the compendium before it grew.
    experiments : sequence of str
        The grown compendium's experiments, ``"CELL:ASSAY"`` in store column order: every one of
        ``folds.experiments``, in any order, and at least one more.

    Returns
    -------
    Folds
        In ``experiments`` order, with the scheme of ``folds`` (n_test, n_valid, seed, tries; same
        arguments, same folds). Guarantees:

        * an old experiment keeps its test fold and its validation folds (or its pin);
        * new experiments are pinned by :func:`make_folds`'s rule, counting each cell type's and
          assay's experiments in the grown compendium (a new cell type with one experiment is
          pinned: every model trains on it, none tests it), unless one of its old experiments is;
        * the others are dealt as :func:`make_folds` deals: the counts of each new cell type and
          assay differ by at most one between test folds, and between the validation folds of a
          test fold; an old cell type or assay that new experiments join has counts within two
          (one from each deal), and the search for the deal counts the old experiments to keep
          them closer where it can;
        * every model ``(i, j)`` trains on at least one experiment of every cell type and assay.

    Raises
    ------
    PredictdInputError
        Field ``experiments``: a name listed twice, an experiment of ``folds`` missing, or nothing
        new. Field ``valid_fold``: ``folds`` already leaves a model without training data.
    """
    experiments = tuple(experiments)
    position = {name: k for k, name in enumerate(experiments)}
    if len(position) != len(experiments):
        twice = next(name for k, name in enumerate(experiments) if position[name] != k)
        raise PredictdInputError("folds", "experiments", f"{twice} is listed twice")
    missing = [name for name in folds.experiments if name not in position]
    if missing:
        raise PredictdInputError("folds", "experiments", f"the folds' experiment(s) {', '.join(missing[:3])} are "
                                 f"missing; extending adds experiments to a compendium, it cannot drop any")
    if len(experiments) == len(folds.experiments):
        raise PredictdInputError("folds", "experiments", "no new experiment: the folds already cover them all")
    cells, assays, cell_of, assay_of = _grid(experiments)
    n_cells, n_assays = len(cells), len(assays)
    old = np.array([position[name] for name in folds.experiments], dtype=np.int64)
    problems = _starved(cell_of[old], assay_of[old], n_cells, n_assays, folds.test_fold, folds.valid_fold,
                        folds.n_valid)
    if problems:
        i, j, axis, g = problems[0]
        raise PredictdInputError("folds", "valid_fold", f"model (test {i}, valid {j}) already has no training "
                                 f"experiment for {axis} {(cells if axis == 'cell type' else assays)[g]}")

    test_fold = np.full(len(experiments), -1, dtype=np.int64)
    test_fold[old] = folds.test_fold
    valid_fold = np.full((folds.n_test, len(experiments)), -1, dtype=np.int64)
    valid_fold[:, old] = folds.valid_fold
    is_new = np.ones(len(experiments), dtype=bool)
    is_new[old] = False
    new = np.flatnonzero(is_new)
    rng = np.random.default_rng(folds.seed)
    # Valid folds pin one experiment of every cell type and assay below the safe count (or starve
    # it), so each one still in need here is new and has a new experiment to pin.
    pinned = np.zeros(len(experiments), dtype=bool)
    pinned[old[folds.pinned]] = True
    need = _needing_pins(cell_of, assay_of, n_cells, n_assays, _smallest_safe_count(folds.n_test), pinned)
    dealt = is_new.copy()
    dealt[new[_pin(cell_of[new], assay_of[new], *need, rng)]] = False
    test_fold, valid_fold = _deal(cell_of, assay_of, n_cells, n_assays, test_fold, valid_fold, dealt, folds.n_valid,
                                  folds.tries, rng)
    return Folds(experiments, test_fold, valid_fold, folds.n_test, folds.n_valid, folds.seed, folds.tries)


def _deal(cell_of: np.ndarray, assay_of: np.ndarray, n_cells: int, n_assays: int, test_fold: np.ndarray,
          valid_fold: np.ndarray, dealt: np.ndarray, n_valid: int, tries: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """Deal the experiments ``dealt`` into test folds, then within each test fold into validation folds.

    The other experiments keep their entries of ``test_fold`` and ``valid_fold`` (-1: pinned, or
    not dealt yet); those already in folds are counted by the search for a balanced deal. The
    finished split is checked: every model keeps training data for every cell type and assay.

    Returns
    -------
    test_fold, valid_fold : new arrays
    """
    n_test = valid_fold.shape[0]
    test_fold, valid_fold = test_fold.copy(), valid_fold.copy()
    new = np.flatnonzero(dealt)
    kept = np.flatnonzero((test_fold >= 0) & ~dealt)
    if n_test > 1:  # a single test fold holds no experiment: the holdout targets are its test set
        test_fold[new] = _balanced_deal(cell_of[new], assay_of[new], n_cells, n_assays, n_test, tries, rng,
                                        (cell_of[kept], assay_of[kept], test_fold[kept]))
    for i in range(n_test):
        rest = new[test_fold[new] != i]
        kept = np.flatnonzero(valid_fold[i] >= 0)
        valid_fold[i, rest] = _balanced_deal(cell_of[rest], assay_of[rest], n_cells, n_assays, n_valid, tries, rng,
                                             (cell_of[kept], assay_of[kept], valid_fold[i, kept]))

    problems = _starved(cell_of, assay_of, n_cells, n_assays, test_fold, valid_fold, n_valid)
    if problems:  # unreachable by the argument in the module notes; never repaired
        raise RuntimeError(f"fold construction broke its guarantee: (test, valid, axis, index) {problems[0]}")
    return test_fold, valid_fold


def imbalance_score(cell_of: np.ndarray, assay_of: np.ndarray, fold: np.ndarray, n_folds: int) -> int:
    """PREDICTD's score of one deal: sum over cell types and assays of the largest per-fold count.

    Entries with ``fold < 0`` are ignored. The lower bound is ``sum ceil(n / n_folds)`` over the
    cell types' and the assays' experiment counts ``n``.
    """
    keep = np.asarray(fold) >= 0
    return int(_scores(np.asarray(cell_of)[keep], np.asarray(assay_of)[keep], np.asarray(fold)[keep][None, :],
                       n_folds)[0])


def _smallest_safe_count(n_test: int) -> int:
    """Fewest experiments a cell type or assay needs to be dealt without pins: ``n - ceil(n/T) >= 2``, or
    ``n >= 2`` with a single test fold, which takes none of them."""
    if n_test == 1:
        return 2
    n = 1
    while n - -(-n // n_test) < 2:
        n += 1
    return n


def _needing_pins(cell_of: np.ndarray, assay_of: np.ndarray, n_cells: int, n_assays: int, safe: int,
                  pinned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell types and assays (two boolean masks) with some but fewer than ``safe`` experiments, none ``pinned``."""
    def need(group: np.ndarray, n_groups: int) -> np.ndarray:
        n = np.bincount(group, minlength=n_groups)
        return (n > 0) & (n < safe) & (np.bincount(group[pinned], minlength=n_groups) == 0)

    return need(cell_of, n_cells), need(assay_of, n_assays)


def _pin(cell_of: np.ndarray, assay_of: np.ndarray, need_cell: np.ndarray, need_assay: np.ndarray,
         rng: np.random.Generator) -> np.ndarray:
    """Pin one of these experiments (they stay in training) for every cell type and assay in need.

    Greedy: each pin is drawn among the experiments that cover the most still-unpinned small cell
    types and assays (an experiment of a small cell type *and* a small assay covers both). Every
    cell type and assay in need must have an experiment here.
    """
    need_cell, need_assay = need_cell.copy(), need_assay.copy()
    pinned = np.zeros(cell_of.size, dtype=bool)
    while need_cell.any() or need_assay.any():
        gain = need_cell[cell_of].astype(np.int64) + need_assay[assay_of]
        candidates = np.flatnonzero(gain == gain.max())
        e = int(candidates[rng.integers(candidates.size)])
        pinned[e] = True
        need_cell[cell_of[e]] = need_assay[assay_of[e]] = False
    return pinned


def _balanced_deal(cell_of: np.ndarray, assay_of: np.ndarray, n_cells: int, n_assays: int, n_folds: int,
                   tries: int, rng: np.random.Generator,
                   fixed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """PREDICTD's best-of-``tries`` round-robin deal, then made equitable (see module notes).

    ``fixed``: (cell_of, assay_of, fold) of experiments already in folds, counted by the search only.
    """
    fold = _best_of_tries(cell_of, assay_of, n_cells, n_assays, n_folds, tries, rng, fixed)
    return _equalise(cell_of, n_cells + assay_of, n_cells + n_assays, fold, n_folds, rng)


def _best_of_tries(cell_of: np.ndarray, assay_of: np.ndarray, n_cells: int, n_assays: int, n_folds: int,
                   tries: int, rng: np.random.Generator,
                   fixed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Shuffle, deal round-robin (position k goes to fold k mod n_folds), keep the lowest score.

    ``_CHUNK`` shuffles are drawn and scored at once; ties keep the earliest draw. The score of a
    draw includes the ``fixed`` experiments (cell_of, assay_of, fold), which are not dealt.
    """
    n = cell_of.size
    fixed_cells, fixed_assays, fixed_fold = fixed if fixed is not None else (np.empty(0, dtype=np.int64),) * 3
    scored_cells, scored_assays = np.concatenate([fixed_cells, cell_of]), np.concatenate([fixed_assays, assay_of])
    deal = np.arange(n, dtype=np.int64) % n_folds
    best, best_score = None, None
    for start in range(0, tries, _CHUNK):
        m = min(_CHUNK, tries - start)
        order = np.argsort(rng.random((m, n)), axis=1)  # one shuffle per row
        fold = np.empty((m, n), dtype=np.int64)
        np.put_along_axis(fold, order, np.broadcast_to(deal, (m, n)), axis=1)
        scores = _scores(scored_cells, scored_assays, np.hstack([np.broadcast_to(fixed_fold, (m, fixed_fold.size)),
                                                                 fold]), n_folds)
        k = int(np.argmin(scores))
        if best_score is None or scores[k] < best_score:
            best, best_score = fold[k].copy(), scores[k]
    return best


def _scores(cell_of: np.ndarray, assay_of: np.ndarray, fold: np.ndarray, n_folds: int) -> np.ndarray:
    """Imbalance score of each row of ``fold`` (draws x experiments), by one bincount per axis."""
    m = fold.shape[0]
    draw = np.arange(m, dtype=np.int64)[:, None]
    total = np.zeros(m, dtype=np.int64)
    for group in (cell_of, assay_of):
        n_groups = int(group.max()) + 1 if group.size else 0
        counts = np.bincount(((draw * n_groups + group) * n_folds + fold).ravel(), minlength=m * n_groups * n_folds)
        total += counts.reshape(m, n_groups, n_folds).max(axis=2).sum(axis=1)
    return total


def _equalise(end_a: np.ndarray, end_b: np.ndarray, n_vertices: int, fold: np.ndarray, n_folds: int,
              rng: np.random.Generator) -> np.ndarray:
    """Recolour until every vertex's counts in any two folds differ by at most one (de Werra).

    Experiments are edges ``end_a[e] -- end_b[e]`` of a bipartite graph (cell types, then assays
    offset by the number of cell types). While some vertex has two folds ``a``, ``b`` at least two
    apart, the experiments of ``a`` and ``b`` are recoloured equitably. That minimises, at each
    vertex, the sum of squared counts of ``a`` and ``b`` for their fixed total, so the sum of squared
    counts over all vertices falls at each step and the loop ends. Fold sizes stay within one.
    """
    fold = fold.copy()
    while True:
        counts = np.zeros((n_vertices, n_folds), dtype=np.int64)
        np.add.at(counts, (end_a, fold), 1)
        np.add.at(counts, (end_b, fold), 1)
        gap = (counts[:, :, None] - counts[:, None, :]).max(axis=0)
        a, b = np.unravel_index(int(np.argmax(gap)), gap.shape)
        if gap[a, b] < 2:
            return fold
        members = np.flatnonzero((fold == a) | (fold == b))
        colour = _equitable_two_colouring(end_a[members], end_b[members], n_vertices, rng)
        fold[members] = np.where(colour == 0, a, b)


def _equitable_two_colouring(end_a: np.ndarray, end_b: np.ndarray, n_vertices: int,
                             rng: np.random.Generator) -> np.ndarray:
    """Colour the edges of a bipartite graph 0/1 so each vertex has as many of each, give or take one.

    The edges are split into trails, colours alternating along each. Trails first start at
    odd-degree vertices and run until stuck, which can only happen at another odd-degree vertex, so
    every vertex ends at most one open trail; inner vertices get one edge of each colour per pass.
    The rest are closed trails, of even length because the graph is bipartite, so their start is
    balanced too. Odd open trails alternate their first colour, keeping the totals within one.
    """
    m = end_a.size
    ends = (end_a.tolist(), end_b.tolist())
    adjacency: list[list[int]] = [[] for _ in range(n_vertices)]
    for e in rng.permutation(m).tolist():
        adjacency[ends[0][e]].append(e)
        adjacency[ends[1][e]].append(e)
    degree = [len(edges) for edges in adjacency]
    pointer = [0] * n_vertices
    used = [False] * m
    colour = np.zeros(m, dtype=np.int64)

    def trail(vertex: int, c: int) -> int:
        length = 0
        while True:
            edges, p = adjacency[vertex], pointer[vertex]
            while p < len(edges) and used[edges[p]]:
                p += 1
            pointer[vertex] = p
            if p == len(edges):
                return length
            e = edges[p]
            used[e] = True
            colour[e] = c
            c ^= 1
            length += 1
            other = ends[1][e] if ends[0][e] == vertex else ends[0][e]
            degree[vertex] -= 1
            degree[other] -= 1
            vertex = other

    starts = rng.permutation(n_vertices).tolist()
    first = 0
    for vertex in starts:
        if degree[vertex] % 2 == 1 and trail(vertex, first) % 2 == 1:
            first ^= 1
    for vertex in starts:
        if degree[vertex] > 0:
            trail(vertex, 0)
    return colour
