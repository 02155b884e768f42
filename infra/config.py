"""Deployment settings of the predictd CDK app: pinned versions, bucket layout and context switches.

Everything another part of the deployment must mirror lives here once: the EMR release (the containers'
Dockerfile builds FROM the EMR Serverless image of the same release), the bucket prefixes and the ledger
tag of the cloud contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The cloud contract's layout (prefixes, scratch tag and its expiry, attempts per job) is shared with the
# handlers and the Azure template: objects tagged SCRATCH_TAG (fold attempts copied to models/ or failed)
# expire, since S3 lifecycle filters match prefixes from the start of the key only.
from predictd_core.cloud.contract import (CONFIG_SUFFIXES, CONFIGS_PREFIX, DATA_PREFIX, MAX_ATTEMPTS,  # noqa: F401
                                          RUNS_PREFIX, SCRATCH_EXPIRY_DAYS, SCRATCH_TAG)
from predictd_core.cloud.settings import DEFAULT_ENTRY_POINT

# The EMR release whose Spark matches predictd's pin (pyproject.toml: pyspark==3.5.7). No EMR 7.x release
# ships Spark 3.5.7; the newest Spark in the 7.x line is 3.5.6, first in emr-7.11.0 (3.5.6-amzn-0), then
# emr-7.12.0 (3.5.6-amzn-1) and emr-7.13.0 (3.5.6-amzn-2). A 3.5.6 runtime runs code built against the
# 3.5.7 client (same minor line, patch releases only fix bugs), and 7.12.0 is the newest of them that has
# been out long enough to be listed for EMR Serverless and EMR on EC2 alike, with its base image
# public.ecr.aws/emr-serverless/spark/emr-7.12.0:latest. The containers' Dockerfile must build FROM that.
EMR_RELEASE_LABEL = "emr-7.12.0"

# The bucket layout of the cloud contract. LOGS is this app's addition: EMR-on-EC2 cluster logs.
LOGS_PREFIX = "logs/"

# `predictd status RUN_ID --bucket B` finds the ledger table from this tag on the bucket.
LEDGER_TABLE_TAG = "predictd:ledger-table"

# The EMR Serverless job entry point inside the custom image (containers/emr-serverless/entrypoint.py).
ENTRY_POINT = DEFAULT_ENTRY_POINT

# The image's interpreter (the EMR 7 base runs Python 3.9; the Dockerfile adds 3.11 and sets PYSPARK_PYTHON
# to it). EMR Serverless documents these Spark settings as the way to run a job on another Python, so every
# job passes them rather than relying on the image's ENV reaching the driver and executors.
IMAGE_PYTHON = "/usr/bin/python3.11"
SPARK_SUBMIT_PARAMETERS = (f"--conf spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON={IMAGE_PYTHON} "
                           f"--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON={IMAGE_PYTHON} "
                           f"--conf spark.executorEnv.PYSPARK_PYTHON={IMAGE_PYTHON}")
ENGINES = ("emr-serverless", "emr-ec2")


IMAGE_TAG_KEY = "image-tag"
# Docker's tag grammar (ECR accepts the same): what `docker push REPO:TAG` can have pushed.
_IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class SettingsError(ValueError):
    """A missing or invalid ``-c`` context value; its message is one line that names the key."""


@dataclass(frozen=True)
class DeploySettings:
    """What `cdk deploy -c engine=... -c image-tag=...` chose.

    Parameters
    ----------
    engine : str
        ``emr-serverless`` (default) or ``emr-ec2``: the latter adds the Step Functions state machine that
        runs each job on a transient EMR-on-EC2 cluster, and the handlers start executions of it.
    image_tag : str
        The tag of the predictd image in the stack's ECR repository that EMR Serverless runs. Required, with
        no default: tags are immutable, so the tag names exactly one pushed image and a deploy never picks up
        whatever was pushed last.
    """

    engine: str = "emr-serverless"
    image_tag: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise SettingsError(f"The 'engine' context value must be one of {', '.join(ENGINES)}. "
                                f"Got {self.engine!r} instead (cdk deploy -c engine=emr-ec2).")
        if not self.image_tag:
            raise SettingsError(f"The '{IMAGE_TAG_KEY}' context value is required: the tag of the predictd image "
                                f"pushed to the PredictdImages repository (cdk synth|deploy -c {IMAGE_TAG_KEY}=v1).")
        if not _IMAGE_TAG.fullmatch(self.image_tag):
            raise SettingsError(f"The '{IMAGE_TAG_KEY}' context value {self.image_tag!r} is not an image tag "
                                f"(letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-').")

    @classmethod
    def from_context(cls, node) -> DeploySettings:
        """Read the settings from a construct node's context (``-c engine=emr-ec2 -c image-tag=v1``)."""
        return cls(engine=node.try_get_context("engine") or cls.engine,
                   image_tag=node.try_get_context(IMAGE_TAG_KEY))

    @property
    def uses_emr_ec2(self) -> bool:
        """Whether the EMR-on-EC2 state machine is deployed and the handlers start it."""
        return self.engine == "emr-ec2"
