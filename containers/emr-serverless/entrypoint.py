"""The entry point of predictd's EMR jobs: ``spark-submit entrypoint.py COMMAND ARGS...``.

EMR Serverless runs ``local:///opt/predictd/entrypoint.py`` (this file, copied there by the Dockerfile)
with the job's entryPointArguments: the predictd CLI argv, e.g. ``train s3://B/runs/R/config.yaml
--test-fold 0 --valid-fold 1 --model-dir s3://B/runs/R/attempts/test0-valid1/attempt-1``. The job
succeeds or fails with the CLI's exit code (0, or 2 for bad input naming the file and field).
"""

import sys

from predictd_core.cli.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
