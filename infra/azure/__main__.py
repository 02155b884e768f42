"""``python -m infra.azure [PATH]``: write the Azure template (default ``cdk.out/azure/predictd.json``)."""

from __future__ import annotations

import sys
from pathlib import Path

from infra.azure.template import write_template

DEFAULT_PATH = Path("cdk.out/azure/predictd.json")

if __name__ == "__main__":
    print(write_template(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH))
