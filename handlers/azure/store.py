"""The deployment's storage account (Blob storage) as the contract's object store.

A contract key's first folder is a container of the account and the rest the blob's name:
``configs/pilot.yaml`` is the blob ``pilot.yaml`` of the container ``configs`` (``az://configs/pilot.yaml``).
A version is the blob's ETag, without its quotes, as Event Grid's ``Microsoft.Storage.BlobCreated`` event
gives it (``data.eTag``), so an event and :meth:`BlobStore.read_current` name the same version alike.
"""

from __future__ import annotations

import time
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from predictd_core.cloud.contract import SCRATCH_TAG, ObjectVersion, store_root
from predictd_core.cloud.settings import AzureSettings

COPY_TIMEOUT = 300.0  # seconds a server-side copy may stay pending (models are a few MB; same account)


def version_of(etag: str) -> str:
    """The contract's version id of a blob: its ETag without quotes (``"0x8D..."`` -> ``0x8D...``)."""
    return etag.strip('"')


def _quoted(version_id: str) -> str:
    """The ETag of ``version_id`` as an ``If-Match`` header carries it (quoted)."""
    return f'"{version_of(version_id)}"'


def split_key(key: str) -> tuple[str, str]:
    """``configs/pilot.yaml`` -> (``configs``, ``pilot.yaml``): the container and the blob name of a key.

    Raises
    ------
    ValueError
        When ``key`` has no container or no blob name (``configs/``, ``pilot.yaml``).
    """
    container, _, name = key.partition("/")
    if not container or not name:
        raise ValueError(f"blob key {key!r}: expected CONTAINER/NAME (e.g. configs/pilot.yaml)")
    return container, name


class BlobStore:
    """``ObjectStore`` over one storage account's containers (``configs``, ``data``, ``runs``).

    Parameters
    ----------
    account : str
        The storage account's name (the contract's ``store``).
    blob_endpoint : str
        The account's blob endpoint (``https://ACCOUNT.blob.core.windows.net``; Azurite's in the tests).
    credential : object
        What azure-storage-blob signs in with: an azure-identity credential in the cloud (the function
        app's managed identity), an ``AzureNamedKeyCredential`` for Azurite.
    """

    cloud = "azure"

    def __init__(self, account: str, blob_endpoint: str, credential: Any) -> None:
        self.name = account
        self.service = BlobServiceClient(account_url=blob_endpoint, credential=credential)

    @classmethod
    def from_settings(cls, settings: AzureSettings, credential: Any) -> BlobStore:
        """The store of ``settings.storage_account`` at its blob endpoint."""
        return cls(settings.storage_account, settings.endpoint("blob"), credential)

    @property
    def root(self) -> str:
        return store_root("azure", self.name)

    def _blob(self, key: str):
        return self.service.get_blob_client(*split_key(key))

    def read_version(self, obj: ObjectVersion) -> str | None:
        """The text of the blob ``obj.key`` if its ETag is still ``obj.version_id``; None when it changed or
        is gone. Blob storage keeps no old versions for us, so a replaced config is not run."""
        if obj.store != self.name:
            raise ValueError(f"{obj.url}: object of storage account {obj.store!r}, this store is {self.name!r}")
        try:
            download = self._blob(obj.key).download_blob(etag=_quoted(obj.version_id),
                                                          match_condition=MatchConditions.IfNotModified)
            return download.readall().decode()
        except (ResourceModifiedError, ResourceNotFoundError):
            return None

    def read_current(self, key: str) -> tuple[ObjectVersion, bytes] | None:
        """The blob's current version (its ETag) and bytes, from one download; None when there is none."""
        try:
            download = self._blob(key).download_blob()
            payload = download.readall()  # the ETag of a download is the version these bytes are of
        except ResourceNotFoundError:
            return None
        version = ObjectVersion(cloud="azure", store=self.name, key=key,
                                version_id=version_of(download.properties.etag))
        return version, payload

    def put(self, key: str, payload: bytes, content_type: str) -> None:
        """One upload of the whole blob (Blob storage commits it only when complete)."""
        self._blob(key).upload_blob(payload, overwrite=True,
                                    content_settings=ContentSettings(content_type=content_type))

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``: ``runs/RUN/`` lists the blobs ``RUN/...`` of the container ``runs``; a
        prefix without ``/`` (``run``, ``""``) lists every container whose name starts with it."""
        container, slash, name_prefix = prefix.partition("/")
        if slash:
            containers = [container]
        else:
            containers = [c.name for c in self.service.list_containers(name_starts_with=prefix or None)]
        keys = []
        for name in containers:
            try:
                keys += [f"{name}/{blob.name}" for blob in
                         self.service.get_container_client(name).list_blobs(name_starts_with=name_prefix or None)]
            except ResourceNotFoundError:  # no such container: no such keys
                continue
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Delete the blob; deleting one that is gone is no error (as on S3)."""
        try:
            self._blob(key).delete_blob()
        except ResourceNotFoundError:
            pass

    def copy(self, source: str, target: str) -> None:
        """Copy the blob ``source`` to ``target`` server-side (Copy Blob within the account: tags are not
        copied, properties and metadata are), waiting until the copy is complete.

        Raises
        ------
        RuntimeError
            When the copy fails, or is still pending after ``COPY_TIMEOUT`` seconds.
        """
        source_blob, target_blob = self._blob(source), self._blob(target)
        try:
            started = target_blob.start_copy_from_url(source_blob.url)
        except HttpResponseError as error:
            if error.status_code not in (401, 403) or error.error_code != "CannotVerifyCopySource":
                raise
            # The identity may not authorize the copy's read of the source (a Copy Blob reads it with the
            # caller's credentials only where the service allows it): copy through this process instead.
            download = source_blob.download_blob()
            target_blob.upload_blob(download.readall(), overwrite=True, content_settings=ContentSettings(
                content_type=download.properties.content_settings.content_type))
            return
        # Within one account a copy is usually complete when it is accepted; a pending one is polled.
        status, copy_id, description = started["copy_status"], started["copy_id"], None
        deadline = time.monotonic() + COPY_TIMEOUT
        while status == "pending":
            if time.monotonic() > deadline:
                target_blob.abort_copy(copy_id)
                raise RuntimeError(f"az://{target}: copy from az://{source} still pending after {COPY_TIMEOUT:.0f} s")
            time.sleep(0.5)
            copy = target_blob.get_blob_properties().copy
            status, description = copy.status, copy.status_description
        if status != "success":
            raise RuntimeError(f"az://{target}: copy from az://{source} ended {status}: {description}")

    def tag_scratch(self, key: str) -> None:
        """Set the blob index tag ``predictd:retention=scratch`` (the lifecycle rule's filter)."""
        name, value = SCRATCH_TAG
        self._blob(key).set_blob_tags({name: value})
