"""Both clouds' deployments as one parametrized fixture: every scenario runs against AWS (moto) and Azure
(Azurite + the local Batch service)."""

from __future__ import annotations

import pytest

from tests.handlers.conftest import cloud, moto_endpoint  # noqa: F401  (fixtures)


@pytest.fixture(params=["aws", "azure"])
def deployment(request, monkeypatch):
    """A fresh deployment of one cloud, with the pilot's placeholder compendium not yet uploaded."""
    from tests.cloud.deployments import AwsDeployment, AzureDeployment

    if request.param == "aws":
        yield AwsDeployment(request.getfixturevalue("cloud"))
        return
    from tests.azure.batch_service import BatchService

    with BatchService() as service:
        yield AzureDeployment(request.getfixturevalue("azurite"), service, monkeypatch)
