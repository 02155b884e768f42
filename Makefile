# The two commands of the README. Each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test clean chromium synth bench-quick
# The CDK app: jsii's Node 20 notice is noise; the CDK CLI sends no telemetry, checks no versions and
# never asks EC2 instance metadata for credentials while synthesizing.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := true
NODE_STAMP := node_modules/.package-lock.json
# checkov (the Azure template's scanner) in a venv of its own: its many pins (boto3 among them) would fight
# predictd's. tests/infra/test_azure_template.py runs it from there.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
AZURE_TEMPLATE := cdk.out/azure/predictd.json
# The image tag the checked templates name (deploys name theirs: npx cdk deploy -c image-tag=v1).
IMAGE_TAG ?= synth-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The AWS CDK CLI (aws-cdk@2) and Azurite (the tests' Azure Storage), pinned in package-lock.json; npm ci
# rewrites node_modules/.package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

demo: $(STAMP)
	$(BIN)/predictd demo

# The report test renders report.html in Debian's headless Chromium; install it when absent (root or sudo).
CHROMIUM := $(shell command -v chromium 2>/dev/null)

chromium:
ifeq ($(CHROMIUM),)
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
endif

# The suite in TEST_WORKERS processes (pytest-xdist), each test file whole on one of them (its module fixtures
# run once), the longest files handed out first (tests/conftest.py). Three on the 2-core machine: two left the
# cores idle 28% of the time (JVM starts, waits on local services), and three ran the suite in 601 s against
# 687 s, the same tree back to back.
TEST_WORKERS ?= 3

test: $(STAMP) chromium $(NODE_STAMP) $(CHECKOV_STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The Roadmap-scale benchmarks of BENCHMARKS.md on small sizes (about two minutes): the scripts work, the
# tables have their shape; the full commands and their numbers are in BENCHMARKS.md.
bench-quick: $(STAMP)
	$(BIN)/python bench/quick.py

# Synthesize the CloudFormation templates into cdk.out (offline; cdk-nag checks them), then the Azure ARM
# template into cdk.out/azure (checkov checks it; --skip-download: no Prisma Cloud calls; LOG_LEVEL=ERROR: its
# graph builder warns about every expression-named dependency it cannot resolve) and the function app's
# package into cdk.out/azure/functions (`func azure functionapp publish` runs there). Deploying: README.
synth: $(STAMP) $(NODE_STAMP) $(CHECKOV_STAMP)
	AWS_EC2_METADATA_DISABLED=true npx cdk synth --quiet -c image-tag=$(IMAGE_TAG)
	$(BIN)/python -m infra.azure $(AZURE_TEMPLATE)
	$(BIN)/python -m infra.build azure-functions cdk.out/azure/functions
	LOG_LEVEL=ERROR $(CHECKOV) --quiet --compact --skip-download --framework arm --file $(AZURE_TEMPLATE)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) demo-output node_modules cdk.out .cdk-cache
