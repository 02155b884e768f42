"""The handlers' settings on each cloud, read from the environment the deployment sets.

The variable names are part of the contract: the CDK app (``infra/``) sets the AWS ones on the Lambda
functions, the Azure template (``infra/azure/``) the Azure ones on the function app. One table per cloud,
each variable named once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from predictd_core.cloud.contract import MAX_ATTEMPTS, REPROCESS_DELAY_SECONDS

REPROCESS_DELAY_HELP = ("seconds from the first new data object to the reprocessing run of a config that uses "
                        "it: every object arriving meanwhile joins the same run")

# The EMR Serverless job entry point inside the custom image (containers/emr-serverless/entrypoint.py).
DEFAULT_ENTRY_POINT = "local:///opt/predictd/entrypoint.py"

# Environment variable -> settings field, per cloud.
AWS_ENVIRONMENT = {
    "PREDICTD_BUCKET": "bucket",
    "PREDICTD_LEDGER_TABLE": "ledger_table",
    "PREDICTD_TOPIC_ARN": "topic_arn",
    "PREDICTD_ENGINE": "engine",
    "PREDICTD_APPLICATION_ID": "application_id",
    "PREDICTD_JOB_ROLE_ARN": "job_role_arn",
    "PREDICTD_STATE_MACHINE_ARN": "state_machine_arn",
    "PREDICTD_MAX_ATTEMPTS": "max_attempts",
    "PREDICTD_ENTRY_POINT": "entry_point",
    "PREDICTD_SPARK_PARAMETERS": "spark_parameters",
    "PREDICTD_REPROCESS_DELAY": "reprocess_delay",
}
AZURE_ENVIRONMENT = {
    "PREDICTD_STORAGE_ACCOUNT": "storage_account",
    "PREDICTD_BLOB_ENDPOINT": "blob_endpoint",
    "PREDICTD_TABLE_ENDPOINT": "table_endpoint",
    "PREDICTD_QUEUE_ENDPOINT": "queue_endpoint",
    "PREDICTD_LEDGER_TABLE": "ledger_table",
    "PREDICTD_NOTICE_QUEUE": "notice_queue",
    "PREDICTD_BATCH_ENDPOINT": "batch_endpoint",
    "PREDICTD_BATCH_POOL": "batch_pool",
    "PREDICTD_IMAGE": "image",
    "PREDICTD_JOB_IDENTITY_CLIENT_ID": "job_identity_client_id",
    "PREDICTD_JOB_IDENTITY_RESOURCE_ID": "job_identity_resource_id",
    "PREDICTD_MAX_ATTEMPTS": "max_attempts",
    "PREDICTD_REPROCESS_DELAY": "reprocess_delay",
}
# Azure names the deployment template gives its resources (the containers are the contract's folders).
AZURE_LEDGER_TABLE = "predictdledger"
AZURE_NOTICE_QUEUE = "predictd-run-notices"
AZURE_BATCH_POOL = "predictd"


class AwsSettings(BaseModel):
    """Where the run data, ledger and notifications live on AWS, and how jobs are started.

    Frozen (hashable) so that the clients built from one set of settings can be cached across warm
    invocations.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cloud: Literal["aws"] = "aws"
    bucket: str = Field(min_length=3)
    ledger_table: str = Field(min_length=3)
    topic_arn: str = Field(min_length=1)
    engine: Literal["emr-serverless", "emr-ec2"] = "emr-serverless"
    application_id: str | None = None
    job_role_arn: str | None = None
    state_machine_arn: str | None = None
    max_attempts: int = Field(MAX_ATTEMPTS, ge=1, description="attempts per job before the run fails")
    entry_point: str = DEFAULT_ENTRY_POINT
    spark_parameters: str | None = None
    reprocess_delay: int = Field(REPROCESS_DELAY_SECONDS, ge=0, description=REPROCESS_DELAY_HELP)

    @model_validator(mode="after")
    def _engine_has_its_resources(self) -> AwsSettings:
        needed = (("application_id", "job_role_arn") if self.engine == "emr-serverless"
                  else ("state_machine_arn",))
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            names = {field: variable for variable, field in AWS_ENVIRONMENT.items()}
            raise ValueError(f"engine {self.engine} needs {', '.join(names[m] for m in missing)}")
        return self

    @property
    def store(self) -> str:
        return self.bucket


class AzureSettings(BaseModel):
    """Where the run data, ledger and notifications live on Azure, and the Batch pool that runs jobs.

    The endpoints default to the public cloud's for ``storage_account``; the tests point them at Azurite
    and at the local Batch service. ``job_identity_*`` is the user-assigned managed identity the Batch
    nodes run jobs as (its client id goes into each task's environment for azure-identity).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cloud: Literal["azure"] = "azure"
    storage_account: str = Field(min_length=3)
    blob_endpoint: str | None = None
    table_endpoint: str | None = None
    queue_endpoint: str | None = None
    ledger_table: str = AZURE_LEDGER_TABLE
    notice_queue: str = AZURE_NOTICE_QUEUE
    batch_endpoint: str = Field(min_length=8)
    batch_pool: str = AZURE_BATCH_POOL
    image: str = Field(min_length=3, description="the predictd image every task runs (REGISTRY/NAME:TAG)")
    job_identity_client_id: str | None = None
    job_identity_resource_id: str | None = None
    max_attempts: int = Field(MAX_ATTEMPTS, ge=1, description="attempts per job before the run fails")
    reprocess_delay: int = Field(REPROCESS_DELAY_SECONDS, ge=0, description=REPROCESS_DELAY_HELP)

    def endpoint(self, service: Literal["blob", "table", "queue"]) -> str:
        """The account's ``service`` endpoint: the configured one, else ``https://ACCOUNT.SERVICE.core.windows.net``."""
        configured = getattr(self, f"{service}_endpoint")
        return (configured or f"https://{self.storage_account}.{service}.core.windows.net").rstrip("/")

    @property
    def store(self) -> str:
        return self.storage_account


Settings = AwsSettings | AzureSettings


def aws_environment(**fields: str) -> dict[str, str]:
    """The Lambda environment that sets AWS settings ``fields`` (by field name): what the CDK app writes.

    Raises
    ------
    KeyError
        For a field the handlers do not read.
    """
    variables = {field: variable for variable, field in AWS_ENVIRONMENT.items()}
    unknown = sorted(set(fields) - set(variables))
    if unknown:
        raise KeyError(f"not AWS handler settings: {unknown} (predictd_core/cloud/settings.py, AWS_ENVIRONMENT)")
    return {variables[field]: value for field, value in fields.items()}


def _load(model: type[BaseModel], environment: dict[str, str], environ: Mapping[str, str], cloud: str):
    names = {field: variable for variable, field in environment.items()}
    values = {field: environ[variable] for variable, field in environment.items() if environ.get(variable)}
    try:
        return model(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{names.get(str(e['loc'][0]), 'settings') if e['loc'] else 'settings'}: {e['msg']}"
            for e in error.errors())
        raise ValueError(f"predictd handler environment ({cloud}): {problems}") from None


def load_aws_settings(environ: Mapping[str, str] = os.environ) -> AwsSettings:
    """AWS settings from ``environ``; a missing or bad variable raises a ValueError naming it."""
    return _load(AwsSettings, AWS_ENVIRONMENT, environ, "aws")


def load_azure_settings(environ: Mapping[str, str] = os.environ) -> AzureSettings:
    """Azure settings from ``environ``; a missing or bad variable raises a ValueError naming it."""
    return _load(AzureSettings, AZURE_ENVIRONMENT, environ, "azure")
