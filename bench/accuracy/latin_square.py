"""The hold-out design: one target per cell type and per mark (a transversal of the 5 x 5 grid).

Every method trains on the other 20 tracks and imputes the 5 targets, so each cell type and each
mark is imputed exactly once and none is ever missing from training: every cell keeps 4 of its
marks and every mark stays measured in 4 other cells.

The permutation is fixed (cell -> mark), chosen so that it holds the three targets of
``bench/compare_solvers.py`` (E065:H3K4me3, E116:H3K36me3, E117:H3K27me3; E065:H3K4me3 is also
the target of Avocado's pilot tutorial); E003 and E017 take the two marks left, H3K9me3 and H3K4me1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from predictd_core.errors import PredictdInputError

PILOT_TARGETS = ("E003:H3K9me3", "E017:H3K4me1", "E065:H3K4me3", "E116:H3K36me3", "E117:H3K27me3")


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
