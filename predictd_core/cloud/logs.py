"""The cloud handlers' logs: one JSON object a line, with the run id as correlation id.

A handler calls :func:`configure_handler_logging` once (at import, and again cheaply at the top of a call
when its host may install its own logging late); the run logic wraps the work of one run in
:func:`bind_run`, and every record logged inside, from any module, carries ``run_id``::

    {"time": "2025-01-31T12:00:00.123Z", "level": "INFO", "logger": "predictd_core.cloud.runs",
     "message": "run pilot-3f2a started fold-0-1 attempt 1 as 00f1", "run_id": "pilot-3f2a"}

Search a deployment's logs for one run with ``{ $.run_id = "pilot-3f2a" }`` (CloudWatch Logs) or
``traces | where message has '"run_id": "pilot-3f2a"'`` (Application Insights).

The hosts already log the root logger somewhere: the AWS Lambda Python runtime installs a handler on it
before it imports the handler module (``awslambdaric.bootstrap._setup_logging``: it writes each record, as
its formatter made it, to the Lambda log stream), and the Azure Functions Python worker installs one that
forwards each formatted record to the host. A second handler would log every record twice, so those
handlers are kept and only given this module's formatter and run-id filter. Standard library only: the
handlers' bundles stay small.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, Iterator

LEVEL_VARIABLE = "PREDICTD_LOG_LEVEL"

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("predictd_run_id", default=None)

# What every LogRecord carries; anything else on a record came from ``extra=`` or a filter and is logged.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


def current_run_id() -> str | None:
    """The run id bound by the innermost :func:`bind_run`, or None outside any."""
    return _run_id.get()


@contextmanager
def bind_run(run_id: str | None) -> Iterator[str | None]:
    """Tag every record logged inside the block with ``run_id``; nested blocks tag with the innermost id.

    A context variable, so concurrent calls in threads or asyncio tasks keep their own id. A thread
    started inside the block does not inherit it (use ``contextvars.copy_context().run``).

    Parameters
    ----------
    run_id : str or None
        The run's id; None tags nothing (e.g. before the id is known).

    Yields
    ------
    str or None
        ``run_id``.
    """
    token = _run_id.set(run_id)
    try:
        yield run_id
    finally:
        _run_id.reset(token)


class RunIdFilter(logging.Filter):
    """Add the bound run id (:func:`bind_run`) to a record as ``record.run_id``; a ``run_id`` given with
    ``extra=`` wins. Installed on handlers, not loggers: a logger's filters never see the records its
    children propagate to it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            run_id = _run_id.get()
            if run_id is not None:
                record.run_id = run_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``,
    ``message``, ``run_id`` when known, every ``extra=`` field (values JSON cannot hold as their ``str``),
    ``exception`` (the traceback text) and ``stack`` when the record has them.

    Parameters
    ----------
    terminator : str
        Appended to each object. Empty for a ``StreamHandler`` (it ends the line itself); ``"\\n"`` for a
        handler that writes the formatted text as it is (AWS Lambda's, whose own formatters end in one).
    """

    def __init__(self, terminator: str = "") -> None:
        super().__init__()
        self.terminator = terminator

    def format(self, record: logging.LogRecord) -> str:
        document = {"time": _iso_utc(record.created), "level": record.levelname, "logger": record.name,
                    "message": record.getMessage()}
        run_id = getattr(record, "run_id", None)
        if run_id is not None:
            document["run_id"] = run_id
        for key, value in vars(record).items():
            # private attributes (Lambda's _frame_type) and empty ones (Lambda's tenant_id) are host plumbing
            if key not in _STANDARD_ATTRIBUTES and key not in document and not key.startswith("_") \
                    and value is not None:
                document[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, default=str, ensure_ascii=False) + self.terminator


def _iso_utc(created: float) -> str:
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_FILTER = RunIdFilter()


def configure_handler_logging(stream: IO[str] | None = None) -> list[logging.Handler]:
    """Log the root logger as JSON lines at INFO (or ``$PREDICTD_LOG_LEVEL``), tagged with the bound run id.

    A root logger that already has handlers (the Lambda runtime's, the Functions worker's) keeps them,
    each given a :class:`JsonFormatter` and the :class:`RunIdFilter`; one without gets a single
    ``StreamHandler`` on ``stream`` (default stderr). Idempotent: calling it again adds nothing, and
    drops the stream handler it added once a host has installed its own. With the Lambda function's log
    format set to JSON (``AWS_LAMBDA_LOG_FORMAT``) the runtime's JSON formatter is kept: it already logs
    every extra field, ``run_id`` included, and marks its records as JSON for Lambda's level filtering.
    Without ``$PREDICTD_LOG_LEVEL``, a level the Lambda runtime set from ``AWS_LAMBDA_LOG_LEVEL`` is kept.

    Parameters
    ----------
    stream : file-like, optional
        Where the added handler writes when the root logger has none.

    Returns
    -------
    list of logging.Handler
        The root logger's handlers, as configured.
    """
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if getattr(handler, "_predictd_json", False)]
    hosts = [handler for handler in root.handlers if handler not in ours]
    if hosts:
        for handler in ours:  # the host installed its own after an earlier call
            root.removeHandler(handler)
        for handler in hosts:
            if not (_is_lambda_handler(handler) and os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON") \
                    and not isinstance(handler.formatter, JsonFormatter):
                handler.setFormatter(JsonFormatter("\n" if _is_lambda_handler(handler) else ""))
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    elif not ours:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler._predictd_json = True  # type: ignore[attr-defined]  # how a later call knows it
        handler.setFormatter(JsonFormatter())
        handler.addFilter(_FILTER)
        root.addHandler(handler)
    level, problem = _wanted_level()
    if level is not None:
        root.setLevel(level)
    if problem:
        logging.getLogger(__name__).warning(problem)
    return list(root.handlers)


def _is_lambda_handler(handler: logging.Handler) -> bool:
    """The Lambda runtime's root handler (``LambdaLoggerHandler``, ``LambdaLoggerHandlerWithFrameType``):
    it writes the formatted text as it is, so each record must end its own line."""
    return type(handler).__name__.startswith("LambdaLoggerHandler")


def _wanted_level() -> tuple[int | None, str | None]:
    """The root level to set (None: keep the Lambda runtime's) and a warning about a bad setting."""
    wanted = os.environ.get(LEVEL_VARIABLE, "").strip().upper()
    if not wanted:
        return (None, None) if os.environ.get("AWS_LAMBDA_LOG_LEVEL") else (logging.INFO, None)
    level = int(wanted) if wanted.isdigit() else logging.getLevelName(wanted)
    if not isinstance(level, int):  # getLevelName returns "Level X" for an unknown name
        return logging.INFO, f"{LEVEL_VARIABLE}={wanted!r} is not a logging level (DEBUG, INFO, WARNING, ERROR); INFO used"
    return level, None
