"""Errors that carry the file and field a user must fix.

The library raises these; only the CLI turns them into a one-line message and exit code 2.
"""

from __future__ import annotations


class PredictdInputError(ValueError):
    """Bad user input: names the file (or config) and the field, and says what was expected.

    Parameters
    ----------
    source : str
        The file or URL the bad value came from.
    field : str
        The field, column, line or key inside ``source``.
    message : str
        What is wrong and, where it helps, what was expected.
    """

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = str(source)
        self.field = str(field)
        self.message = message
        super().__init__(f"{self.source}: {self.field}: {message}")

    def __reduce__(self):
        """Rebuilt from its three parts, so it crosses process boundaries (parallel ingest) intact."""
        return type(self), (self.source, self.field, self.message)
