"""EventBridge rules that deliver job state changes of predictd's own jobs to the job-state handler."""

from __future__ import annotations

from aws_cdk import Duration, aws_events as events, aws_events_targets as targets, aws_lambda as lambda_, aws_sqs as sqs
from constructs import Construct

EMR_SERVERLESS_PATTERN = {"source": ["aws.emr-serverless"], "detail_type": ["EMR Serverless Job Run State Change"]}
STEP_FUNCTIONS_PATTERN = {"source": ["aws.states"], "detail_type": ["Step Functions Execution Status Change"]}
DELIVERY_RETRIES = 8
DELIVERY_MAX_AGE = Duration.hours(6)


class JobStateRule(Construct):
    """Every state change of the application's job runs (and the state machine's executions) -> ``function``.

    Parameters
    ----------
    function : aws_lambda.IFunction
        The job-state handler.
    application_id : str
        Only this EMR Serverless application's job runs match.
    state_machine_arn : str, optional
        With the EMR-on-EC2 engine: only this state machine's executions match.
    dead_letter_queue : aws_sqs.IQueue
        Events EventBridge could not deliver after its retries.

    Attributes
    ----------
    rules : list of aws_events.Rule
    """

    def __init__(self, scope: Construct, construct_id: str, *, function: lambda_.IFunction, application_id: str,
                 dead_letter_queue: sqs.IQueue, state_machine_arn: str | None = None) -> None:
        super().__init__(scope, construct_id)
        target = targets.LambdaFunction(function, retry_attempts=DELIVERY_RETRIES, max_event_age=DELIVERY_MAX_AGE,
                                        dead_letter_queue=dead_letter_queue)
        patterns = {"EmrServerlessJobRun": events.EventPattern(**EMR_SERVERLESS_PATTERN,
                                                                detail={"applicationId": [application_id]})}
        if state_machine_arn is not None:
            patterns["StepFunctionsExecution"] = events.EventPattern(**STEP_FUNCTIONS_PATTERN,
                                                                     detail={"stateMachineArn": [state_machine_arn]})
        self.rules = [events.Rule(self, name, event_pattern=pattern, targets=[target],
                                  description=f"predictd job state changes ({name})")
                      for name, pattern in patterns.items()]
