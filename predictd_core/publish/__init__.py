"""Publishing a run: ``OUTPUT/manifest.json``, written last, lists what the run is made of."""

from predictd_core.publish.manifest import MANIFEST_FILE, package_versions, write_manifest

__all__ = ["MANIFEST_FILE", "package_versions", "write_manifest"]
