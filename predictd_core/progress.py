"""How a long step reports how far it has got: ``progress(step, done, total, detail="")``.

``step`` names the step (``"ingest"``, ``"train"``, a fold model's name, ...), ``done`` of ``total`` units
are finished, and ``detail`` is a short note for plain progress lines (``"valid MSE 0.0913"``). The
command line shows the calls as bars or log lines; code that runs a step quietly passes :func:`no_progress`.
"""

from __future__ import annotations

from typing import Callable

Progress = Callable[..., None]


def no_progress(_step: str, _done: int, _total: int, _detail: str = "") -> None:
    """A :data:`Progress` that reports nothing."""
