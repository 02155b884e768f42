"""The EventBridge rule that runs the deployment's tick (``handlers.on_schedule``) every few minutes.

A scheduled rule on the default event bus rather than EventBridge Scheduler: the rule invokes the function
through the function's resource policy (no role of its own to create and scope), takes the same target
options as the job-state rules (retries, event age, dead-letter queue), and a fixed rate is all the tick
needs (Scheduler's one-time schedules, time zones and flexible windows would go unused). A tick that is
late, lost or repeated costs nothing: the run logic's steps are idempotent compare-and-swaps and the next
tick comes minutes later.
"""

from __future__ import annotations

from aws_cdk import Duration, aws_events as events, aws_events_targets as targets, aws_lambda as lambda_, aws_sqs as sqs
from constructs import Construct

# Lost job state events are recovered, cancellations take effect and due reprocessing batches start within
# this interval (a reprocessing run starts between REPROCESS_DELAY_SECONDS and that plus the interval after
# its first new object).
TICK_INTERVAL = Duration.minutes(5)
# A tick EventBridge could not deliver is worth little once the next one is due: retry within the interval.
DELIVERY_RETRIES = 2
DELIVERY_MAX_AGE = TICK_INTERVAL


class TickSchedule(Construct):
    """``rate(5 minutes)`` -> ``function``.

    Parameters
    ----------
    function : aws_lambda.IFunction
        The scheduled handler (``handlers.on_schedule.handler``).
    dead_letter_queue : aws_sqs.IQueue
        Ticks EventBridge could not deliver after its retries (the function's own, which its alarm watches).

    Attributes
    ----------
    rule : aws_events.Rule
    """

    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.IFunction,
                 dead_letter_queue: sqs.IQueue) -> None:
        super().__init__(scope, construct_id)
        target = targets.LambdaFunction(function, retry_attempts=DELIVERY_RETRIES, max_event_age=DELIVERY_MAX_AGE,
                                        dead_letter_queue=dead_letter_queue)
        self.rule = events.Rule(self, "Rule", schedule=events.Schedule.rate(TICK_INTERVAL), targets=[target],
                                description="predictd tick: reconcile unfinished jobs, cancel runs asked to, start "
                                            "due reprocessing")
