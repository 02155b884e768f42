#!/usr/bin/env bash
# Installs what bench/accuracy's peers need; safe to run again (installed pieces are kept).
#  - Python: predictd with its `bench` extra (avocado-epigenome, keras 3, torch, all pinned in pyproject.toml)
#    into .venv. torch==2.13.0: on this project's machines pip takes the CPU wheel found on local disk
#    (pip's find-links); straight from PyPI the same pin brings the CUDA build (several GB, runs on CPU too).
#  - Debian: chromimpute (ChromImpute 1.0.3, a Java jar; Java 17 is already present), with apt as root or sudo.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV_PYTHON=${VENV_PYTHON:-.venv/bin/python}
if [ ! -x "$VENV_PYTHON" ]; then
  echo "no $VENV_PYTHON: create it first (make test or make demo does)" >&2
  exit 1
fi
"$VENV_PYTHON" -m pip install --quiet -e '.[bench]'

if [ ! -f /usr/share/java/chromimpute.jar ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromimpute
fi
