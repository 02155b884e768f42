"""The states of jobs and runs, one vocabulary for every engine.

Job states are EMR Serverless' (API ``JobRunSummary.state``); the other engines' states are mapped onto
them by their adapters (Step Functions statuses, Azure Batch task states). Each has a rank, so that a
late, out-of-order report never moves an attempt backwards.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

SUCCESS = "SUCCESS"
FAILED_JOB = "FAILED"
CANCELLED = "CANCELLED"
FAILURE_STATES = frozenset({FAILED_JOB, CANCELLED})
TERMINAL_STATES = FAILURE_STATES | {SUCCESS}
STATE_RANKS = {"STARTING": 0, "SUBMITTED": 1, "QUEUED": 2, "PENDING": 3, "SCHEDULED": 4, "RUNNING": 5,
               "CANCELLING": 6, **{state: 9 for state in TERMINAL_STATES}}

# Run states: PREPARING -> TRAINING -> FINISHING -> SUCCEEDED, or FAILED from any of them.
PREPARING, TRAINING, FINISHING, SUCCEEDED, FAILED = "PREPARING", "TRAINING", "FINISHING", "SUCCEEDED", "FAILED"
ACTIVE_RUN_STATES = (PREPARING, TRAINING, FINISHING)
PLANNED = "PLANNED"  # a job no attempt has started yet (shown by the summary, never stored)


class JobStateChange(BaseModel):
    """A job's new state, whichever engine ran it and however it was learnt (an event, or asked).

    ``job_run_id`` is the id the runner returned when it started the attempt (EMR Serverless job run
    id, Step Functions execution ARN, ``BATCH_JOB/TASK``); ``owner`` the application, state machine or
    pool the job belongs to; ``exit_code`` the job's, where the engine reports it (Azure Batch).
    """

    model_config = ConfigDict(frozen=True)

    job_run_id: str
    owner: str
    state: str
    details: str | None = None
    exit_code: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES
