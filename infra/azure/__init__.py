"""predictd on Azure: the deployment template (ARM JSON generated from Python; infra/azure/README.md)."""
