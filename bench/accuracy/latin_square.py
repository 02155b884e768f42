"""The hold-out designs: Latin squares of the pilot's 5 x 5 grid, and which of them may guide design.

A Latin square here is one target per cell type and per mark (a transversal of the grid). Every
method trains on the other 20 tracks and imputes the 5 targets, so each cell type and each mark is
imputed exactly once and none is ever missing from training: every cell keeps 4 of its marks and
every mark stays measured in 4 other cells.

The squares are the 5 *cyclic* ones: with the cells in the order of :data:`CELLS` and the marks in
the order of :data:`MARKS`, square ``cyclic-s`` takes mark ``(i + s) mod 5`` in cell ``i``. Together
they hold out each of the 25 tracks exactly once.

The mark order is the one in which the historical square (E003:H3K9me3, E017:H3K4me1, E065:H3K4me3,
E116:H3K36me3, E117:H3K27me3; chosen to hold the three targets of ``bench/compare_solvers.py`` and
the target of Avocado's pilot tutorial, and the square the design was explored on) is ``cyclic-0``.
Any transversal is the shift-0 square of the mark order it lists, so this costs nothing; in the
pilot's own order (tracks.tsv: H3K4me3, H3K27me3, H3K36me3, H3K9me3, H3K4me1) the historical square is
not cyclic (shifts 3, 3, 3, 4, 2), and its targets would be scattered over three cyclic squares, so no
cyclic square would be free of design targets. In this order the 15 targets of the kept-back squares
are exactly the tracks that were never a target of this benchmark.

Roles, fixed before any square but ``cyclic-0`` was scored:
  * design squares (may guide design: look, tune, compare as often as needed): ``cyclic-0`` (used for
    design for months) and ``cyclic-1`` (the next shift; a second, fresh square so that a change is
    seen on 10 targets, not 5);
  * kept-back squares (the final check, scored all together, once): ``cyclic-2``, ``cyclic-3``,
    ``cyclic-4``.
The kept-back squares' targets are not pristine: ``make demo`` cross-validates all 25 pilot tracks
(other training sets, against the average only) and ``bench/extend.py`` scores E116's five marks,
and both have been read. They have never been this benchmark's targets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from predictd_core.errors import PredictdInputError

CELLS = ("E003", "E017", "E065", "E116", "E117")
MARKS = ("H3K9me3", "H3K4me1", "H3K4me3", "H3K36me3", "H3K27me3")
DESIGN = "design"
KEPT_BACK = "kept-back"


def cyclic_targets(shift: int, cells: Sequence[str] = CELLS, marks: Sequence[str] = MARKS) -> tuple[str, ...]:
    """The cyclic Latin square ``shift``: cell ``i`` (in ``cells`` order) takes mark ``(i + shift) mod n``."""
    if len(cells) != len(marks):
        raise ValueError(f"a cyclic square needs as many cells as marks, got {len(cells)} and {len(marks)}")
    return tuple(f"{cell}:{marks[(i + shift) % len(marks)]}" for i, cell in enumerate(cells))


@dataclass(frozen=True)
class Square:
    """One hold-out: its name, its role (:data:`DESIGN` or :data:`KEPT_BACK`) and its 5 targets (``CELL:MARK``)."""

    name: str
    role: str
    targets: tuple[str, ...]


SQUARES = (
    Square("cyclic-0", DESIGN, cyclic_targets(0)),
    Square("cyclic-1", DESIGN, cyclic_targets(1)),
    Square("cyclic-2", KEPT_BACK, cyclic_targets(2)),
    Square("cyclic-3", KEPT_BACK, cyclic_targets(3)),
    Square("cyclic-4", KEPT_BACK, cyclic_targets(4)),
)
# The historical square, the targets of a single hold-out (tests, quick runs).
PILOT_TARGETS = SQUARES[0].targets


def design_squares() -> tuple[Square, ...]:
    """The squares that may guide design."""
    return tuple(square for square in SQUARES if square.role == DESIGN)


def kept_back_squares() -> tuple[Square, ...]:
    """The squares kept back for the final check."""
    return tuple(square for square in SQUARES if square.role == KEPT_BACK)


def select_squares(names: Iterable[str] | None = None, kept_back: bool = False) -> tuple[Square, ...]:
    """The squares a run scores: the design squares named in ``names`` (all of them when ``names`` is
    None), or with ``kept_back`` every kept-back square and nothing else.

    The kept-back squares are scored only all together and only when asked for by ``kept_back``, so
    that no run touches one by accident and none is picked out of the others.

    Raises
    ------
    ValueError
        Both ``names`` and ``kept_back``; a name that is no square; a kept-back square named.
    """
    if kept_back:
        if names is not None:
            raise ValueError("the kept-back squares are scored all together: give no square names with them")
        return kept_back_squares()
    if names is None:
        return design_squares()
    by_name = {square.name: square for square in SQUARES}
    chosen = []
    for name in dict.fromkeys(names):
        if name not in by_name:
            raise ValueError(f"unknown square {name!r}; the squares are {', '.join(by_name)}")
        if by_name[name].role == KEPT_BACK:
            raise ValueError(f"{name} is kept back for the final check; the kept-back squares are scored only "
                             f"all together, with --kept-back")
        chosen.append(by_name[name])
    return tuple(chosen)


def check_latin_square(targets: Iterable[str], cells: Iterable[str], marks: Iterable[str],
                       source: str = "targets") -> tuple[str, ...]:
    """``targets`` (``CELL:MARK``) if they take every cell and every mark exactly once.

    Raises
    ------
    PredictdInputError
        Naming ``source``, when the grid is not square, a target is not ``CELL:MARK`` of the grid,
        or a cell or mark is taken twice or never.
    """
    targets, cells, marks = tuple(targets), tuple(cells), tuple(marks)
    if len(cells) != len(marks):
        raise PredictdInputError(source, "grid", f"a Latin square needs as many cells as marks, "
                                                 f"got {len(cells)} cells and {len(marks)} marks")
    pairs = []
    for index, target in enumerate(targets):
        cell, _, mark = target.partition(":")
        if cell not in cells or mark not in marks:
            raise PredictdInputError(source, f"targets[{index}]", f"{target!r} is not CELL:MARK of the grid")
        pairs.append((cell, mark))
    for axis, names, position in (("cell", cells, 0), ("mark", marks, 1)):
        counts = Counter(pair[position] for pair in pairs)
        wrong = [name for name in names if counts[name] != 1]
        if wrong:
            raise PredictdInputError(source, "targets", f"every {axis} must be a target exactly once; "
                                                        f"{', '.join(f'{n} x{counts[n]}' for n in wrong)}")
    return targets
