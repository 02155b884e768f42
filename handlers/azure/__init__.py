"""The Azure adapters of the cloud ports (predictd_core.cloud.ports): Blob, Table and Queue storage, Batch."""
