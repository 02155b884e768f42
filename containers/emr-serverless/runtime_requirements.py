"""Print the image's pip requirements: predictd's pinned dependencies and its ``aws`` extra, without
pyspark (the EMR image's Spark provides it). pyproject.toml stays the one place the pins live.

Usage: ``python3 runtime_requirements.py pyproject.toml > requirements.txt``
"""

import re
import sys
import tomllib

PROVIDED_BY_THE_IMAGE = {"pyspark"}


def runtime_requirements(pyproject: dict) -> list[str]:
    """``name==version`` lines of ``project.dependencies`` and the ``aws`` extra, minus what the image has."""
    project = pyproject["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["aws"]]
    return [line for line in wanted if re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0].lower()
            not in PROVIDED_BY_THE_IMAGE]


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as handle:
        print("\n".join(runtime_requirements(tomllib.load(handle))))
