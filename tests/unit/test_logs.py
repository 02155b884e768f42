"""The handlers' JSON logs (predictd_core/cloud/logs.py): each record one JSON line with the run id bound
around it, configured once whatever handler the host (Lambda runtime, Functions worker) installed."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from predictd_core.cloud.logs import (JsonFormatter, RunIdFilter, bind_run, configure_handler_logging,
                                      current_run_id)


@pytest.fixture
def empty_root():
    """A function emptying the root logger of pytest's handlers (it adds them as the test's call begins,
    after the fixtures), which restores them and the level after the test."""
    logger = logging.getLogger()
    saved = (logger.handlers[:], logger.level)

    def empty() -> logging.Logger:
        logger.handlers.clear()
        return logger

    yield empty
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])


@pytest.fixture
def lines():
    """A logger writing JSON lines (with the run-id filter) to a buffer; returns (logger, read_lines)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RunIdFilter())
    logger = logging.getLogger("predictd.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_a_record_is_one_json_line_with_time_level_logger_message_and_extra_fields(lines):
    logger, read = lines
    logger.info("run %s started %d jobs", "r1", 3, extra={"job": "fold-0-1", "attempt": 2, "path": object()})

    (line,) = read()
    assert line["level"] == "INFO" and line["logger"] == "predictd.test_logs"
    assert line["message"] == "run r1 started 3 jobs"
    assert (line["job"], line["attempt"]) == ("fold-0-1", 2)
    assert line["path"].startswith("<object object")  # what JSON cannot hold is logged as its str
    assert line["time"].endswith("Z") and line["time"][10] == "T" and len(line["time"]) == 24  # ISO 8601, UTC, ms
    assert "run_id" not in line  # nothing bound


def test_bind_run_tags_every_record_inside_and_nothing_after(lines):
    logger, read = lines
    with bind_run("pilot-0001") as run_id:
        assert run_id == current_run_id() == "pilot-0001"
        logger.info("inside")
        logging.getLogger("predictd.test_logs.child").warning("from a child logger")
    logger.info("after")

    inside, child, after = read()
    assert inside["run_id"] == child["run_id"] == "pilot-0001"
    assert "run_id" not in after and current_run_id() is None


def test_nested_binds_tag_with_the_innermost_and_restore_the_outer(lines):
    logger, read = lines
    with bind_run("outer"):
        with bind_run("inner"):
            logger.info("a")
        logger.info("b")
        with bind_run(None):
            logger.info("c")
    assert [line.get("run_id") for line in read()] == ["inner", "outer", None]


def test_an_explicit_run_id_wins_and_threads_keep_their_own(lines):
    logger, read = lines

    def work(run_id: str) -> None:
        with bind_run(run_id):
            barrier.wait()  # both bound at once
            logger.info("work")

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=work, args=(name,)) for name in ("run-a", "run-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with bind_run("bound"):
        logger.info("explicit", extra={"run_id": "given"})
    records = read()
    assert sorted(line["run_id"] for line in records[:2]) == ["run-a", "run-b"]
    assert records[2]["run_id"] == "given"


def test_an_exception_is_logged_with_its_traceback_inside_the_json(lines):
    logger, read = lines
    with bind_run("r2"):
        try:
            raise ValueError("bad\nconfig")
        except ValueError:
            logger.exception("advance failed")

    (line,) = read()  # one line although the traceback has many
    assert line["level"] == "ERROR" and line["message"] == "advance failed" and line["run_id"] == "r2"
    assert line["exception"].startswith("Traceback") and "ValueError: bad\nconfig" in line["exception"]


def test_configure_twice_gives_one_handler_at_info(empty_root, monkeypatch):
    root = empty_root()
    monkeypatch.delenv("PREDICTD_LOG_LEVEL", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_LOG_LEVEL", raising=False)
    stream = io.StringIO()
    configure_handler_logging(stream)
    configure_handler_logging(stream)

    assert len(root.handlers) == 1 and root.level == logging.INFO
    with bind_run("r3"):
        logging.getLogger("predictd_core.cloud.runs").info("started")
    logging.getLogger("x").debug("not at INFO")
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["message"], line["run_id"], line["logger"]) == ("started", "r3", "predictd_core.cloud.runs")


def test_the_level_comes_from_predictd_log_level(empty_root, monkeypatch):
    root = empty_root()
    monkeypatch.setenv("PREDICTD_LOG_LEVEL", "debug")
    configure_handler_logging(io.StringIO())
    assert root.level == logging.DEBUG
    monkeypatch.setenv("PREDICTD_LOG_LEVEL", "LOUD")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)
    configure_handler_logging()
    assert root.level == logging.INFO and "PREDICTD_LOG_LEVEL='LOUD'" in stream.getvalue()


class LambdaLoggerHandler(logging.Handler):
    """As the AWS Lambda Python runtime's (awslambdaric.bootstrap): it writes the formatted text as it is
    to the log sink, and its filter adds the request id."""

    def __init__(self) -> None:
        super().__init__()
        self.sink = io.StringIO()
        self.setFormatter(logging.Formatter("[%(levelname)s]\t%(asctime)s\t%(aws_request_id)s\t%(message)s\n"))
        self.addFilter(self._request_id)

    @staticmethod
    def _request_id(record: logging.LogRecord) -> bool:
        record.aws_request_id = "req-1"
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.write(self.format(record))


def test_a_host_handler_keeps_being_used_with_the_json_formatter(empty_root, monkeypatch):
    """Lambda: no second handler (every record would be logged twice); the runtime's one writes JSON lines
    with the run id and its request id."""
    root = empty_root()
    monkeypatch.delenv("AWS_LAMBDA_LOG_FORMAT", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_LOG_LEVEL", raising=False)
    monkeypatch.delenv("PREDICTD_LOG_LEVEL", raising=False)
    host = LambdaLoggerHandler()
    root.addHandler(host)
    root.setLevel(logging.WARNING)  # the runtime leaves the default
    configure_handler_logging()
    configure_handler_logging()

    assert root.handlers == [host] and host.filters.count(host.filters[-1]) == 1 and len(host.filters) == 2
    with bind_run("r4"):
        logging.getLogger("handlers.on_config").info("run r4 created")
        logging.getLogger("handlers.on_config").info("second")
    text = host.sink.getvalue()
    assert text.endswith("\n") and text.count("\n") == 2  # the runtime's handler adds no line end of its own
    first, second = (json.loads(line) for line in text.splitlines())
    assert (first["message"], first["run_id"], first["aws_request_id"]) == ("run r4 created", "r4", "req-1")
    assert second["message"] == "second"


def test_a_lambda_json_log_format_keeps_the_runtime_formatter_and_adds_the_run_id(empty_root, monkeypatch):
    root = empty_root()
    monkeypatch.setenv("AWS_LAMBDA_LOG_FORMAT", "JSON")
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "WARN")
    monkeypatch.delenv("PREDICTD_LOG_LEVEL", raising=False)
    host = LambdaLoggerHandler()
    runtime_formatter = logging.Formatter("%(message)s run_id=%(run_id)s\n")  # stands in for its JsonFormatter
    host.setFormatter(runtime_formatter)
    root.addHandler(host)
    root.setLevel(logging.WARNING)  # the runtime set it from AWS_LAMBDA_LOG_LEVEL
    configure_handler_logging()

    assert host.formatter is runtime_formatter and root.level == logging.WARNING
    with bind_run("r5"):
        logging.getLogger("handlers").warning("late")
    assert host.sink.getvalue() == "late run_id=r5\n"


def test_a_handler_the_host_installs_later_replaces_the_one_added_before(empty_root, monkeypatch):
    """Azure: should the Functions worker install its handler after the import-time call, the next call
    (at the top of a function) leaves the worker's alone, in JSON."""
    root = empty_root()
    monkeypatch.delenv("PREDICTD_LOG_LEVEL", raising=False)
    configure_handler_logging(io.StringIO())

    class AsyncLoggingHandler(logging.Handler):  # as the worker's: forwards self.format(record) to the host
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(self.format(record))

    worker = AsyncLoggingHandler()
    root.addHandler(worker)
    configure_handler_logging()
    assert root.handlers == [worker]
    with bind_run("r6"):
        logging.getLogger("handlers.azure.functions").info("tick")
    (message,) = worker.messages
    assert json.loads(message)["run_id"] == "r6" and not message.endswith("\n")
