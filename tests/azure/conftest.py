"""The Azure adapters and ``az://`` I/O against Azurite (one per session: tests/conftest.py)."""
