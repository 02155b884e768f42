#!/bin/bash
# EMR-on-EC2 bootstrap action (every node, before Spark starts): install predictd for Python 3.11.
# Amazon Linux 2023 under EMR 7.x ships Python 3.9; predictd needs 3.11 or later, which dnf provides, and
# the cluster's spark-env points PYSPARK_PYTHON at it.
# Arguments: the S3 URL of the predictd wheel the stack uploaded, and the wheel's file name (the asset's
# key is a content hash; pip needs the wheel's own name).
set -euo pipefail
wheel_url="$1"
wheel_name="$2"
sudo dnf install -y -q python3.11 python3.11-pip
aws s3 cp --only-show-errors "$wheel_url" "/tmp/$wheel_name"
# The aws extra brings s3fs: the core reads and writes s3:// itself.
sudo python3.11 -m pip install --quiet "/tmp/${wheel_name}[aws]"
