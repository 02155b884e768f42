"""The tracks table: which (cell type, assay) experiments exist and where their signal lives."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from predictd_core.errors import PredictdInputError
from predictd_core.io import is_remote, parent_location, read_text, resolve_location

REQUIRED_COLUMNS = ("cell_type", "assay", "path")


class ExperimentNamesError(ValueError):
    """A list of ``CELL:ASSAY`` names with a malformed or repeated entry; ``index`` is the malformed entry's
    position (None for a repeat), so each caller names the field in its own error."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


def split_experiment_names(names: Sequence[object]) -> list[tuple[str, str]]:
    """The (cell type, assay) of each ``CELL:ASSAY`` name, the form of holdout lists, folds files and configs.

    >>> split_experiment_names(["E003:H3K4me3", "E017:DNase"])
    [('E003', 'H3K4me3'), ('E017', 'DNase')]

    Raises
    ------
    ExperimentNamesError
        On the first name that is not exactly one non-empty cell and one non-empty assay joined by ``:``, or on
        a name listed twice.
    """
    pairs = []
    for index, name in enumerate(names):
        cell, sep, assay = name.partition(":") if isinstance(name, str) else ("", "", "")
        if not sep or not cell or not assay or ":" in assay:
            raise ExperimentNamesError(f"expected 'CELL:ASSAY', got {name!r}", index)
        pairs.append((cell, assay))
    if len(set(pairs)) != len(pairs):
        raise ExperimentNamesError("an experiment is listed twice")
    return pairs

@dataclass(frozen=True)
class Track:
    """One observed experiment: a cell type, an assay and the file holding its signal."""

    cell_type: str
    assay: str
    path: str

    @property
    def name(self) -> str:
        """``CELL:ASSAY``, the form used in configs and holdout lists."""
        return f"{self.cell_type}:{self.assay}"


def read_tracks_table(path: str | os.PathLike) -> list[Track]:
    """Read a tracks TSV (columns ``cell_type``, ``assay``, ``path``; extra columns ignored).

    The table may be local or at a URL (``s3://...``). Relative paths in it are resolved against the
    table's folder (so a table in a bucket names the objects beside it). Local files must exist;
    remote URLs are checked when they are read.

    Raises
    ------
    PredictdInputError
        On a missing table or column, an empty table, a duplicate (cell_type, assay) or a missing file.
    """
    source = str(path)
    return parse_tracks_table(read_text(source, "tracks", "tracks table not found"), source)


def parse_tracks_table(text: str, source: str) -> list[Track]:
    """The experiments of a tracks table's ``text``; ``source`` (the table's path or URL) names it in
    errors and anchors relative paths. Shared with the cloud handlers, which read the text themselves.

    Raises
    ------
    PredictdInputError
        As :func:`read_tracks_table`, except for the table's own absence.
    """
    folder = parent_location(source)
    reader = csv.DictReader((line for line in text.splitlines() if not line.startswith("#")), delimiter="\t")
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise PredictdInputError(source, "header", f"missing column(s) {', '.join(missing)}; "
                                 f"expected tab-separated {', '.join(REQUIRED_COLUMNS)}")
    tracks: list[Track] = []
    seen: dict[tuple[str, str], int] = {}
    for line_no, row in enumerate(reader, start=2):
        values = {c: (row.get(c) or "").strip() for c in REQUIRED_COLUMNS}
        for column, value in values.items():
            if not value:
                raise PredictdInputError(source, f"line {line_no}: {column}", "empty value")
        key = (values["cell_type"], values["assay"])
        if key in seen:
            raise PredictdInputError(source, f"line {line_no}: cell_type/assay",
                                     f"duplicate experiment {key[0]}:{key[1]} (first on line {seen[key]})")
        seen[key] = line_no
        location = values["path"]
        if not os.path.isabs(location):
            location = resolve_location(folder, location)
        if not is_remote(location) and not Path(location).is_file():
            raise PredictdInputError(source, f"line {line_no}: path", f"file not found: {location}")
        tracks.append(Track(values["cell_type"], values["assay"], location))
    if not tracks:
        raise PredictdInputError(source, "rows", "the tracks table lists no experiments (empty compendium)")
    return tracks
