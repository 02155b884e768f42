"""The handlers' settings, read from the Lambda environment the stack sets (see the cloud contract)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_ENTRY_POINT = "local:///opt/predictd/entrypoint.py"

# Environment variable -> settings field, and back.
ENVIRONMENT = {
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
}
VARIABLES = {field: variable for variable, field in ENVIRONMENT.items()}


class Settings(BaseModel):
    """Where the run data, ledger and notifications live, and how jobs are started.

    Frozen (hashable) so that the AWS clients built from one set of settings can be cached across
    warm invocations.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket: str = Field(min_length=3)
    ledger_table: str = Field(min_length=3)
    topic_arn: str = Field(min_length=1)
    engine: Literal["emr-serverless", "emr-ec2"] = "emr-serverless"
    application_id: str | None = None
    job_role_arn: str | None = None
    state_machine_arn: str | None = None
    max_attempts: int = Field(3, ge=1, description="attempts per job before the run fails")
    entry_point: str = DEFAULT_ENTRY_POINT
    spark_parameters: str | None = None

    @model_validator(mode="after")
    def _engine_has_its_resources(self) -> Settings:
        needed = (("application_id", "job_role_arn") if self.engine == "emr-serverless"
                  else ("state_machine_arn",))
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(f"engine {self.engine} needs {', '.join(VARIABLES[m] for m in missing)}")
        return self


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from ``environ``; a missing or bad variable raises a ValueError naming it."""
    values = {field: environ[variable] for variable, field in ENVIRONMENT.items() if environ.get(variable)}
    try:
        return Settings(**values)
    except ValidationError as error:
        problems = "; ".join(f"{VARIABLES.get(str(e['loc'][0]), 'settings') if e['loc'] else 'settings'}: {e['msg']}"
                             for e in error.errors())
        raise ValueError(f"predictd handler environment: {problems}") from None
