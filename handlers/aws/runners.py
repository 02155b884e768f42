"""The two AWS engines that run a job, behind the contract's ``JobRunner`` port: EMR Serverless
(``StartJobRun``) and, for ``-c engine=emr-ec2``, a Step Functions state machine that runs one predictd
command on a transient EMR-on-EC2 cluster (``StartExecution``, named by the client token)."""

from __future__ import annotations

import json
from typing import Any

from predictd_core.cloud.contract import ERROR_URL_VARIABLE, JobSpec
from predictd_core.cloud.ports import JobStatus

# Step Functions execution status -> the contract's job state.
STEP_FUNCTIONS_STATES = {"RUNNING": "RUNNING", "SUCCEEDED": "SUCCESS", "FAILED": "FAILED",
                         "TIMED_OUT": "FAILED", "ABORTED": "FAILED"}


class EmrServerlessRunner:
    """EMR Serverless ``StartJobRun`` of the predictd entry point in the custom image."""

    def __init__(self, client: Any, application_id: str, role_arn: str, entry_point: str,
                 spark_parameters: str | None = None) -> None:
        self.client = client
        self.owner = application_id
        self.role_arn = role_arn
        self.entry_point = entry_point
        self.spark_parameters = spark_parameters

    def start(self, spec: JobSpec) -> str:
        """``StartJobRun`` with the attempt's client token; returns the job run id."""
        spark_submit: dict[str, Any] = {"entryPoint": self.entry_point, "entryPointArguments": spec.arguments}
        parameters = [self.spark_parameters] if self.spark_parameters else []
        if spec.error_url:  # the driver runs the CLI, which writes a bad input's error there
            parameters.append(f"--conf spark.emr-serverless.driverEnv.{ERROR_URL_VARIABLE}={spec.error_url}")
        if parameters:
            spark_submit["sparkSubmitParameters"] = " ".join(parameters)
        response = self.client.start_job_run(
            applicationId=self.owner, clientToken=spec.client_token, executionRoleArn=self.role_arn,
            name=spec.display_name, jobDriver={"sparkSubmit": spark_submit},
            executionTimeoutMinutes=spec.timeout_minutes,
            tags={"predictd:run": spec.run_id, "predictd:stage": spec.job.stage, "predictd:job": spec.job.name,
                  "predictd:attempt": str(spec.attempt)})
        return response["jobRunId"]

    def status(self, job_run_id: str) -> JobStatus:
        """``GetJobRun``: its state (EMR Serverless' vocabulary is the contract's) and state details."""
        job_run = self.client.get_job_run(applicationId=self.owner, jobRunId=job_run_id)["jobRun"]
        return JobStatus(job_run["state"], job_run.get("stateDetails") or None)

    def cancel(self, job_run_id: str) -> None:
        """``CancelJobRun``; a job run that already ended is left as it is."""
        try:
            self.client.cancel_job_run(applicationId=self.owner, jobRunId=job_run_id)
        except self.client.exceptions.ValidationException:
            pass  # EMR Serverless refuses to cancel a job run in a terminal state

    def close_run(self, run_id: str) -> None:
        """Nothing to release: EMR Serverless holds no per-run object (the application stops when idle)."""


class StepFunctionsRunner:
    """Step Functions ``StartExecution`` of the emr-ec2 state machine: input ``{"args": [predictd argv],
    "timeoutSeconds": the stage's limit}`` (the step's timeout)."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self.client = client
        self.owner = state_machine_arn

    def start(self, spec: JobSpec) -> str:
        """Start the execution named by the client token; returns its ARN.

        Step Functions refuses a second execution of the same name; the name (hence the ARN) is known, so
        an attempt already started answers with its ARN instead of starting anything.
        """
        try:
            response = self.client.start_execution(stateMachineArn=self.owner, name=spec.client_token,
                                                   input=json.dumps({"args": spec.arguments,
                                                                     "timeoutSeconds": spec.timeout_minutes * 60}))
        except self.client.exceptions.ExecutionAlreadyExists:
            return self.execution_arn(spec.client_token)
        return response["executionArn"]

    def status(self, job_run_id: str) -> JobStatus:
        """``DescribeExecution``: its status as a job state, error and cause as details."""
        execution = self.client.describe_execution(executionArn=job_run_id)
        details = ": ".join(part for part in (execution.get("error"), execution.get("cause")) if part) or None
        return JobStatus(STEP_FUNCTIONS_STATES.get(execution["status"], execution["status"]), details)

    def cancel(self, job_run_id: str) -> None:
        """``StopExecution`` (its cluster is terminated by the state machine's catch); an ended one is left."""
        execution = self.client.describe_execution(executionArn=job_run_id)
        if execution["status"] == "RUNNING":
            self.client.stop_execution(executionArn=job_run_id, cause="the predictd run ended")

    def close_run(self, run_id: str) -> None:
        """Nothing to release: each execution ends with its cluster."""

    def execution_arn(self, name: str) -> str:
        """``arn:...:execution:MACHINE:NAME``, the ARN of the execution ``name`` of this state machine."""
        return f"{self.owner.replace(':stateMachine:', ':execution:', 1)}:{name}"
