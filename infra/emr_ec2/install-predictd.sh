#!/bin/bash
# EMR-on-EC2 bootstrap action (every node, before Spark starts): install predictd for Python 3.11.
# Amazon Linux 2023 under EMR 7.x ships Python 3.9; predictd needs 3.11 or later, which dnf provides, and
# the cluster's spark-env points PYSPARK_PYTHON at it.
# Arguments: the S3 URL of the predictd wheel the stack uploaded, the wheel's file name (the asset's key is
# a content hash; pip needs the wheel's own name), then predictd's pinned dependencies without pyspark
# (containers/emr-serverless/runtime_requirements.py, the list the EMR Serverless image installs).
# pyspark is never installed: spark-submit puts the cluster's own PySpark (and py4j) on the driver's and the
# executors' path, matching the cluster's Spark jars, and nothing downloads its 300 MB at boot.
set -euo pipefail
wheel_url="$1"
wheel_name="$2"
shift 2
if [ "$#" -eq 0 ]; then
  echo "install-predictd.sh: no requirements given (expected predictd's pinned dependencies)" >&2
  exit 2
fi
for requirement in "$@"; do
  case "$requirement" in
    pyspark|pyspark[=\<\>\ \;\[]*)
      echo "install-predictd.sh: refusing to install $requirement: the cluster's Spark provides pyspark" >&2
      exit 2 ;;
  esac
done
sudo dnf install -y -q python3.11 python3.11-pip
aws s3 cp --only-show-errors "$wheel_url" "/tmp/$wheel_name"
sudo python3.11 -m pip install --quiet --no-cache-dir "$@"
sudo python3.11 -m pip install --quiet --no-cache-dir --no-deps "/tmp/$wheel_name"
