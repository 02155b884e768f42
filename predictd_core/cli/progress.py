"""How the command line shows the pipeline's progress: rich bars on a terminal, plain lines in a log."""

from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as ProgressBars

from predictd_core.progress import Progress


@contextmanager
def progress_display(console: Console) -> Iterator[Progress]:
    """Progress of the pipeline's steps, fed by its ``progress(step, done, total, detail="")``: a rich bar
    per step on a terminal (drawn on ``console``); plain lines on stdout when it is not one (a file, a pipe,
    a cloud job's log), where bars would show nothing until the command ends (:class:`ProgressLines`)."""
    if not _is_terminal(sys.stdout):
        lines = ProgressLines(sys.stdout)
        yield lines
        lines.close()  # not after a failure: its one error line is the last word
        return
    bars = ProgressBars(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=False)
    tasks: dict[str, int] = {}

    def update(step: str, done: int, total: int, detail: str = "") -> None:
        if step not in tasks:
            tasks[step] = bars.add_task(step, total=total)
        bars.update(tasks[step], completed=done, total=total)

    bars.start()
    try:
        yield update
    except BaseException:
        # A failed step leaves only its one error line on stderr: erase the bars (terminal) or skip their
        # final render and the blank line Progress.stop() prints (file, pipe).
        bars.live.transient = True
        bars.live.stop()
        raise
    bars.stop()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


PROGRESS_SECONDS = 30.0  # in a long loop, a line at least this often (a cloud job's log shows it is alive)...
PROGRESS_FRACTION = 0.1  # ...and one per tenth of the loop, whichever comes first
# What one unit of a step is; every other step is a model fit ("train", or a fold model's name).
STEP_UNITS = {"ingest": "chunk", "refine": "pair", "impute": "chunk", "evaluate": "track", "extend": "model",
              "simulate": "block"}


class ProgressLines:
    """The pipeline's progress as plain lines, for a log::

        predictd: ingest: chunk 1/40, 2 s
        predictd: train test0-valid1: sweep 3/30, valid MSE 0.0913, 41 s
        predictd: train test0-valid1: done, sweep 12/30, valid MSE 0.0901, 2 min 41 s

    A step prints its first report, then a line per ``PROGRESS_FRACTION`` of its total or per
    ``PROGRESS_SECONDS``, whichever comes first, and a ``done`` line when it reaches its total or, for a
    fit that stops early, when the next step begins (steps run one after another) or the command ends
    (:meth:`close`). Times count from the end of the previous step. Each line is flushed.

    Parameters
    ----------
    out : text stream
        Where the lines go.
    clock : callable
        Seconds, monotonic (a test passes a fake one).
    """

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.out, self.clock = out, clock
        self.steps: dict[str, dict] = {}
        self.mark = clock()  # when the previous step ended: where the next one starts

    def __call__(self, step: str, done: int, total: int, detail: str = "") -> None:
        now = self.clock()
        state = self.steps.get(step)
        if state is None:
            for other in list(self.steps):
                self._end(other)
            state = self.steps[step] = {"started": self.mark, "printed_at": None, "printed_done": 0}
        state.update(done=done, total=total, detail=detail, at=now)
        if total and done >= total:
            self._end(step)
        elif (state["printed_at"] is None or now - state["printed_at"] >= PROGRESS_SECONDS
              or done - state["printed_done"] >= max(1, math.ceil(total * PROGRESS_FRACTION))):
            self._print(step, state, "")
            state.update(printed_at=now, printed_done=done)

    def close(self) -> None:
        """End the steps still open (a fit that stopped before its last sweep)."""
        for step in list(self.steps):
            self._end(step)

    def _end(self, step: str) -> None:
        state = self.steps.pop(step)
        self._print(step, state, "done, ")
        self.mark = state["at"]

    def _print(self, step: str, state: dict, prefix: str) -> None:
        unit = STEP_UNITS.get(step, "sweep")
        label = step if step in STEP_UNITS or step == "train" else f"train {step}"
        detail = f", {state['detail']}" if state["detail"] else ""
        self.out.write(f"predictd: {label}: {prefix}{unit} {state['done']}/{state['total']}{detail}, "
                       f"{_duration(state['at'] - state['started'])}\n")
        self.out.flush()


def _duration(seconds: float) -> str:
    """``41 s``, ``2 min 41 s``, ``1 h 02 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
