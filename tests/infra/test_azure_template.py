"""The Azure deployment template (infra/azure): what it creates, that its expressions and references hold
together (no Azure account here: nothing else checks them before a deploy), and checkov on it with no
finding left and no suppression without a finding."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.azure.batch import AUTOSCALE_FORMULA, AUTOSCALE_PARAMETERS
from infra.azure.config import BLOB_CREATED_FUNCTION, DEADLETTER_CONTAINER, NODE_AGENT_SKU, NODE_IMAGE, ROLES
from infra.azure.functions import SETTINGS_VALUES
from infra.azure.template import build_template, write_template
from predictd_core.cloud.contract import CONFIG_SUFFIXES, FOLDERS, SCRATCH_EXPIRY_DAYS, SCRATCH_TAG
from predictd_core.cloud.settings import (AZURE_BATCH_POOL, AZURE_ENVIRONMENT, AZURE_LEDGER_TABLE,
                                          AZURE_NOTICE_QUEUE)

REPO = Path(__file__).resolve().parents[2]
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
ROLE_NAMES = {guid: name for name, guid in ROLES.items()}


@pytest.fixture(scope="module")
def template() -> dict:
    return build_template()


def of_type(template: dict, kind: str) -> list[dict]:
    return [body for body in template["resources"] if body["type"] == kind]


def one_of_type(template: dict, kind: str) -> dict:
    found = of_type(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def walk_strings(node):
    """Every string in a JSON document, keys included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)
    elif isinstance(node, str):
        yield node


def grants(template: dict) -> set[tuple[str, str, str]]:
    """(role name, scope type, principal key) of every role assignment."""
    found = set()
    for body in of_type(template, "Microsoft.Authorization/roleAssignments"):
        role = re.search(r"'([0-9a-f-]{36})'\)\]$", body["properties"]["roleDefinitionId"]).group(1)
        scope_type = re.match(r"\[concat\('([^']+)/'", body["scope"]).group(1)
        principal_key = re.search(r", '([a-z-]+)', '[0-9a-f-]{36}'\)\]$", body["name"]).group(1)
        found.add((ROLE_NAMES[role], scope_type, principal_key))
    return found


# ------------------------------------------------------------------------------------- the document

def test_parameters_image_tag_required_and_events_off_by_default(template):
    parameters = template["parameters"]
    assert set(parameters) == {"location", "namePrefix", "imageTag", "deploymentContainer", "alertEmail", "vmSize",
                               "maxNodes", "clusterNodes", "operatorPrincipalId", "subscribeEvents"}
    assert parameters["clusterNodes"] == {**parameters["clusterNodes"], "type": "int", "defaultValue": 1,
                                          "minValue": 1}
    assert parameters["operatorPrincipalId"]["defaultValue"] == ""
    assert "defaultValue" not in parameters["imageTag"] and "defaultValue" not in parameters["alertEmail"]
    assert parameters["subscribeEvents"] == {**parameters["subscribeEvents"], "type": "bool", "defaultValue": False}
    assert template["$schema"].endswith("/2019-04-01/deploymentTemplate.json#")


def test_every_expression_is_well_formed(template):
    """Brackets, parentheses and quotes balance in every ARM expression (a typo fails only at deploy time)."""
    expressions = [s for s in walk_strings(template) if s.startswith("[") and not s.startswith("[[")]
    assert len(expressions) > 50
    for text in expressions:
        assert text.endswith("]"), text
        depth, quoted, k = 0, False, 1
        inner = text[1:-1]
        while k <= len(inner):
            char = inner[k - 1]
            if char == "'":
                if quoted and inner[k:k + 1] == "'":  # '' is an escaped quote inside a literal
                    k += 2
                    continue
                quoted = not quoted
            elif not quoted and char == "(":
                depth += 1
            elif not quoted and char == ")":
                depth -= 1
                assert depth >= 0, text
            k += 1
        assert depth == 0 and not quoted, text
    # every parameter and variable an expression names exists
    used_parameters = {m for s in expressions for m in re.findall(r"parameters\('([^']+)'\)", s)}
    used_variables = {m for s in expressions for m in re.findall(r"variables\('([^']+)'\)", s)}
    assert used_parameters == set(template["parameters"])
    assert used_variables <= set(template["variables"])


def _resource_id(body: dict) -> str:
    """The resourceId() (or extensionResourceId()) expression naming ``body``, as dependsOn writes it."""
    name = body["name"][1:-1] if body["name"].startswith("[") else f"'{body['name']}'"
    if body["type"] == "Microsoft.Authorization/roleAssignments":
        scope_type, scope_name = re.fullmatch(r"\[concat\('([^']+)/', (.+)\)\]", body["scope"]).groups()
        return (f"extensionResourceId(resourceId('{scope_type}', {scope_name}), "
                f"'Microsoft.Authorization/roleAssignments', {name})")
    parts = name[len("concat("):-1].split(", '/', ") if name.startswith("concat(") and "'/'" in name else [name]
    return f"resourceId('{body['type']}', {', '.join(parts)})"


def test_every_dependency_is_a_resource_of_the_template(template):
    ids = {_resource_id(body) for body in template["resources"]}
    assert len(ids) == len(template["resources"])  # names are unique
    subnet = "resourceId('Microsoft.Network/virtualNetworks/subnets', variables('vnet'), variables('subnet'))"
    for body in template["resources"]:
        for dependency in body.get("dependsOn", []):
            assert dependency[1:-1] in ids | {subnet}, f"{body['name']} depends on {dependency}"


def test_every_referenced_resource_is_a_dependency(template):
    """ARM infers no dependency from reference(resourceId(...)) (only from a reference by name): a resource
    whose properties read another's must list it in dependsOn, or the deployment races."""
    for body in template["resources"]:
        text = json.dumps({key: value for key, value in body.items() if key != "dependsOn"})
        referenced = set(re.findall(r"reference\((resourceId\('[^']+', [^()]*(?:\([^()]*\))?[^()]*\))", text))
        depends = {dependency[1:-1] for dependency in body.get("dependsOn", [])}
        assert referenced <= depends, f"{body['name']} reads {referenced - depends} without depending on it"


def test_no_keys_or_connection_strings(template):
    text = json.dumps(template)
    for secret in ("listKeys", "AccountKey", "listCredentials", "\"SharedKey\"", "DefaultEndpointsProtocol"):
        assert secret not in text


# ------------------------------------------------------------------------------------------ storage

def test_storage_account_identities_only_tls12_https_no_public_blobs(template):
    props = one_of_type(template, "Microsoft.Storage/storageAccounts")["properties"]
    assert props["supportsHttpsTrafficOnly"] is True and props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowBlobPublicAccess"] is False and props["allowSharedKeyAccess"] is False
    assert one_of_type(template, "Microsoft.Storage/storageAccounts")["kind"] == "StorageV2"
    blob = one_of_type(template, "Microsoft.Storage/storageAccounts/blobServices")["properties"]
    assert blob["isVersioningEnabled"] is True and blob["deleteRetentionPolicy"]["enabled"] is True


def test_containers_are_the_contract_folders_plus_dead_letters_and_the_code_package(template):
    containers = of_type(template, "Microsoft.Storage/storageAccounts/blobServices/containers")
    names = {re.search(r", (\S+)\)\]$", body["name"]).group(1).strip("'") for body in containers}
    assert names == {*(folder.rstrip("/") for folder in FOLDERS), DEADLETTER_CONTAINER,
                     "parameters('deploymentContainer')"}
    assert all(body["properties"]["publicAccess"] == "None" for body in containers)


def test_lifecycle_expires_scratch_blobs_by_tag_and_old_versions(template):
    policy = one_of_type(template, "Microsoft.Storage/storageAccounts/managementPolicies")["properties"]["policy"]
    rules = {rule["name"]: rule["definition"] for rule in policy["rules"]}
    key, value = SCRATCH_TAG
    assert rules["expire-scratch-blobs"]["filters"]["blobIndexMatch"] == [{"name": key, "op": "==", "value": value}]
    assert rules["expire-scratch-blobs"]["actions"] == {
        "baseBlob": {"delete": {"daysAfterModificationGreaterThan": SCRATCH_EXPIRY_DAYS}}}
    assert rules["expire-old-versions"]["actions"] == {"version": {"delete": {"daysAfterCreationGreaterThan": 30}}}


def test_ledger_table_and_notice_queue_have_the_contract_names(template):
    table = one_of_type(template, "Microsoft.Storage/storageAccounts/tableServices/tables")["name"]
    queue = one_of_type(template, "Microsoft.Storage/storageAccounts/queueServices/queues")["name"]
    assert table.endswith(f"'{AZURE_LEDGER_TABLE}')]") and queue.endswith(f"'{AZURE_NOTICE_QUEUE}')]")


# --------------------------------------------------------------------------------- identities, roles

def test_role_assignments_are_exactly_the_designed_ones(template):
    assert grants(template) == {
        ("Storage Blob Data Contributor", "Microsoft.Storage/storageAccounts", "batch-jobs"),
        ("AcrPull", "Microsoft.ContainerRegistry/registries", "batch-jobs"),
        ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts", "function-app"),
        ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts", "function-app"),
        ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts", "function-app"),
        ("Azure Batch Job Submitter", "Microsoft.Batch/batchAccounts", "function-app"),
        ("Monitoring Metrics Publisher", "Microsoft.Insights/components", "function-app"),
        ("Storage Blob Data Contributor", "Microsoft.Storage/storageAccounts", "storage-events"),
        ("Storage Blob Data Contributor", "Microsoft.Storage/storageAccounts", "operator"),
        ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts", "operator"),
        ("Azure Batch Account Reader", "Microsoft.Batch/batchAccounts", "operator"),
    }
    for body in of_type(template, "Microsoft.Authorization/roleAssignments"):
        if "'operator'" in body["name"]:  # a person or a group, and only when given
            assert body["condition"] == "[not(empty(parameters('operatorPrincipalId')))]"
            assert "principalType" not in body["properties"]
        else:  # managed identities of this template
            assert body["properties"]["principalType"] == "ServicePrincipal" and "condition" not in body


def test_registry_has_no_admin_user_or_anonymous_pull(template):
    registry = one_of_type(template, "Microsoft.ContainerRegistry/registries")
    assert registry["sku"]["name"] in ("Basic", "Standard")
    assert registry["properties"]["adminUserEnabled"] is False
    assert registry["properties"]["anonymousPullEnabled"] is False


# -------------------------------------------------------------------------------------------- batch

def test_batch_account_entra_only(template):
    account = one_of_type(template, "Microsoft.Batch/batchAccounts")["properties"]
    assert account["poolAllocationMode"] == "BatchService" and account["allowedAuthenticationModes"] == ["AAD"]


def test_pool_runs_the_image_on_spot_nodes_without_public_ips(template):
    pool = one_of_type(template, "Microsoft.Batch/batchAccounts/pools")
    assert pool["name"].endswith(f"'{AZURE_BATCH_POOL}')]")
    props = pool["properties"]
    assert (props["taskSlotsPerNode"], props["interNodeCommunication"]) == (1, "Enabled")
    assert props["targetNodeCommunicationMode"] == "Simplified"
    vm = props["deploymentConfiguration"]["virtualMachineConfiguration"]
    assert vm["imageReference"] == NODE_IMAGE and vm["nodeAgentSkuId"] == NODE_AGENT_SKU
    containers = vm["containerConfiguration"]
    assert containers["type"] == "DockerCompatible"
    assert containers["containerImageNames"] == [
        "[concat(reference(resourceId('Microsoft.ContainerRegistry/registries', variables('registry')), "
        "'2023-07-01').loginServer, '/predictd:', parameters('imageTag'))]"]
    identity = "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', variables('jobIdentity'))]"
    assert containers["containerRegistries"][0]["identityReference"] == {"resourceId": identity}
    assert pool["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}
    assert props["networkConfiguration"]["publicIPAddressConfiguration"] == {"provision": "NoPublicIPAddresses"}
    assert props["networkConfiguration"]["subnetId"].startswith(
        "[resourceId('Microsoft.Network/virtualNetworks/subnets'")
    autoscale = props["scaleSettings"]["autoScale"]
    assert autoscale["evaluationInterval"] == "PT5M"
    expected = AUTOSCALE_FORMULA
    for placeholder, name in AUTOSCALE_PARAMETERS.items():
        expected = expected.replace(placeholder, f"', string(parameters('{name}')), '")
    assert autoscale["formula"] == f"[concat('{expected}')]"


def evaluate_autoscale(formula: str, pending_samples: list[float], **values: int) -> dict:
    """Run an autoscale formula the way Batch would, for the few constructs this one uses: ``$X = e;``
    statements, ``a ? b : c``, comparisons, min/max, and $PendingTasks's last sample (none: no samples yet).
    Returns the variables it sets."""
    for placeholder, name in AUTOSCALE_PARAMETERS.items():
        formula = formula.replace(placeholder, str(values[name]))
    scope = {"min": lambda *a: min(a), "max": lambda *a: max(a), "taskcompletion": "taskcompletion",
             "TimeInterval_Minute": 60, "percent": 100.0 if pending_samples else 0.0,
             "last": pending_samples[-1] if pending_samples else float("nan")}
    variables = {}
    for statement in filter(None, (part.strip() for part in formula.split(";"))):
        name, text = (side.strip() for side in statement.split("=", 1))
        text = re.sub(r"\$PendingTasks\.GetSamplePercent\([^)]*\)", "percent", text)
        text = text.replace("$PendingTasks.GetSample(1)", "last")
        assert "$PendingTasks" not in text and "$ActiveTasks" not in text, text  # a construct this does not run
        text = re.sub(r"\$(\w+)", r"v_\1", text)
        ternary = re.fullmatch(r"(.+?) \? (.+?) : (.+)", text)
        if ternary:
            text = "({1}) if ({0}) else ({2})".format(*ternary.groups())
        scope[f"v_{name[1:]}"] = variables[name] = eval(text, scope)  # noqa: S307 (our own formula)
    return variables


def test_autoscale_formula_goes_to_zero_on_spot_only():
    formula = AUTOSCALE_FORMULA
    assert "$TargetDedicatedNodes = 0;" in formula and "$NodeDeallocationOption = taskcompletion;" in formula
    for samples in ([], [0], [3, 0]):  # no samples yet, or nothing pending: no node
        assert evaluate_autoscale(formula, samples, maxNodes=20, clusterNodes=4)["$TargetLowPriorityNodes"] == 0
    result = evaluate_autoscale(formula, [0], maxNodes=20, clusterNodes=1)
    assert (result["$TargetLowPriorityNodes"], result["$TargetDedicatedNodes"]) == (0, 0)


def test_autoscale_formula_gives_one_node_per_pending_task_up_to_max_nodes():
    for pending, nodes in ((1, 1), (7, 7), (20, 20), (45, 20)):
        assert evaluate_autoscale(AUTOSCALE_FORMULA, [pending], maxNodes=20, clusterNodes=1)[
            "$TargetLowPriorityNodes"] == nodes


def test_autoscale_formula_brings_up_the_largest_cluster_when_batch_counts_it_as_one_task():
    """A multi-instance task of N nodes may count as one pending task: the pool still gets N nodes."""
    def target(pending: int, cluster: int, max_nodes: int = 20) -> int:
        return evaluate_autoscale(AUTOSCALE_FORMULA, [pending], maxNodes=max_nodes, clusterNodes=cluster)[
            "$TargetLowPriorityNodes"]

    assert target(1, 4) == 4          # one 4-node cluster waiting, counted once
    assert target(3, 4) == 4          # three tasks: at least one cluster's worth
    assert target(30, 4) == 20        # many: one node per pending task, capped by maxNodes
    assert target(1, 8, max_nodes=4) == 8  # a cap below one cluster would stall it: the cluster wins
    assert target(0, 8) == 0          # and nothing at all when idle


def test_nodes_leave_through_a_nat_gateway_from_a_subnet_with_an_nsg(template):
    subnet = one_of_type(template, "Microsoft.Network/virtualNetworks")["properties"]["subnets"][0]["properties"]
    assert subnet["defaultOutboundAccess"] is False
    assert "natGateways" in subnet["natGateway"]["id"]
    assert "networkSecurityGroups" in subnet["networkSecurityGroup"]["id"]
    # no rule lets anything in from the internet
    assert one_of_type(template, "Microsoft.Network/networkSecurityGroups")["properties"]["securityRules"] == []


# ---------------------------------------------------------------------------------- the function app

def test_function_app_settings_are_the_handlers_environment(template):
    site = one_of_type(template, "Microsoft.Web/sites")
    settings = {item["name"]: item["value"] for item in site["properties"]["siteConfig"]["appSettings"]}
    assert set(AZURE_ENVIRONMENT) <= set(settings)
    assert set(settings) - set(AZURE_ENVIRONMENT) == {"AzureWebJobsStorage__accountName",
                                                      "APPLICATIONINSIGHTS_CONNECTION_STRING",
                                                      "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
    assert set(SETTINGS_VALUES) == set(AZURE_ENVIRONMENT.values())  # no value for a field that is gone
    assert "AzureWebJobsStorage" not in settings  # identity-based host storage, no connection string
    assert settings["PREDICTD_LEDGER_TABLE"] == AZURE_LEDGER_TABLE
    assert settings["PREDICTD_NOTICE_QUEUE"] == AZURE_NOTICE_QUEUE
    assert settings["PREDICTD_BATCH_POOL"] == AZURE_BATCH_POOL
    assert settings["PREDICTD_BATCH_ENDPOINT"].startswith("[concat('https://', reference(")
    assert settings["PREDICTD_JOB_IDENTITY_CLIENT_ID"].endswith(".clientId]")
    # the tasks' image is the one the pool prefetches
    pool = one_of_type(template, "Microsoft.Batch/batchAccounts/pools")["properties"]
    image = pool["deploymentConfiguration"]["virtualMachineConfiguration"]["containerConfiguration"]
    assert [settings["PREDICTD_IMAGE"]] == image["containerImageNames"]


def test_function_app_flex_consumption_python_311_https_tls12_no_ftp(template):
    plan = one_of_type(template, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"} and plan["properties"]["reserved"] is True
    site = one_of_type(template, "Microsoft.Web/sites")
    props = site["properties"]
    assert site["kind"] == "functionapp,linux" and site["identity"] == {"type": "SystemAssigned"}
    assert props["httpsOnly"] is True
    assert (props["siteConfig"]["minTlsVersion"], props["siteConfig"]["ftpsState"]) == ("1.2", "Disabled")
    assert props["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    assert props["functionAppConfig"]["deployment"]["storage"]["authentication"] == {"type": "SystemAssignedIdentity"}
    policies = of_type(template, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert len(policies) == 2 and all(body["properties"] == {"allow": False} for body in policies)


# ---------------------------------------------------------------------------------------- events

def test_event_subscriptions_deliver_blob_created_to_the_function_when_asked(template):
    subscriptions = {body["name"].split("'")[-2]: body for body in
                     of_type(template, "Microsoft.EventGrid/systemTopics/eventSubscriptions")}
    assert set(subscriptions) == {"configs-created", "data-created"}
    for folder, body in (("configs", subscriptions["configs-created"]), ("data", subscriptions["data-created"])):
        assert body["condition"] == "[parameters('subscribeEvents')]"
        props = body["properties"]
        assert props["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
        assert props["filter"]["subjectBeginsWith"] == f"/blobServices/default/containers/{folder}/"
        assert props["destination"]["endpointType"] == "AzureFunction"
        assert props["destination"]["properties"]["resourceId"].endswith(f"'/functions/{BLOB_CREATED_FUNCTION}')]")
        assert props["retryPolicy"]["maxDeliveryAttempts"] > 1
        dead_letter = props["deadLetterWithResourceIdentity"]
        assert dead_letter["deadLetterDestination"]["properties"]["blobContainerName"] == DEADLETTER_CONTAINER
    assert subscriptions["configs-created"]["properties"]["filter"]["advancedFilters"] == [
        {"operatorType": "StringEndsWith", "key": "subject", "values": list(CONFIG_SUFFIXES)}]
    topic = one_of_type(template, "Microsoft.EventGrid/systemTopics")
    assert topic["properties"]["topicType"] == "Microsoft.Storage.StorageAccounts"


def test_alerts_mail_the_operator(template):
    group = one_of_type(template, "Microsoft.Insights/actionGroups")
    assert group["properties"]["emailReceivers"][0]["emailAddress"] == "[parameters('alertEmail')]"
    metrics = {body["properties"]["criteria"]["allOf"][0]["metricName"] for body in
               of_type(template, "Microsoft.Insights/metricAlerts")}
    assert {"requests/failed", "DeadLetteredCount"} <= metrics


def test_outputs(template):
    assert set(template["outputs"]) == {"storageAccountName", "batchAccountName", "batchAccountEndpoint",
                                        "functionAppName", "registryLoginServer"}


def test_module_entry_point_writes_the_template(tmp_path):
    path = tmp_path / "azure" / "predictd.json"
    subprocess.run([sys.executable, "-m", "infra.azure", str(path)], cwd=REPO, check=True, capture_output=True)
    assert json.loads(path.read_text()) == build_template()


# ------------------------------------------------------------------------------------------- checkov

def _resource_starts(text: str) -> list[int]:
    """The 1-based line of each top-level resource's opening brace (json.dumps indent=2: 4 spaces)."""
    lines = text.splitlines()
    first = lines.index('  "resources": [')
    starts = []
    for number, line in enumerate(lines[first + 1:], start=first + 2):
        if line == "  ],":
            break
        if line == "    {":
            starts.append(number)
    return starts


def run_checkov(templates: dict[str, dict], folder: Path) -> dict[str, dict[str, set[tuple[str, int]]]]:
    """One checkov scan of ``templates`` (name -> document, written to ``folder/NAME.json``): per name, the
    (check id, resource index) of its failed and skipped checks. One process for all of them: checkov's
    start costs more than a scan."""
    if not CHECKOV.is_file():
        pytest.fail(f"{CHECKOV} is missing: `make test` and `make synth` create it (checkov in its own venv)")
    folder.mkdir(parents=True, exist_ok=True)
    starts, files = {}, []
    for name, template in templates.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(template, indent=2) + "\n")
        starts[str(path)] = _resource_starts(path.read_text())
        assert len(starts[str(path)]) == len(template["resources"])
        files += ["--file", str(path)]
    result = subprocess.run([str(CHECKOV), "--framework", "arm", *files, "--skip-download", "--output", "json"],
                            capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] == sum(len(t["resources"]) for t in templates.values())
    found = {name: {"failed_checks": set(), "skipped_checks": set()} for name in templates}
    for kind in ("failed_checks", "skipped_checks"):
        for check in report["results"].get(kind, []):
            path = check["file_abs_path"]
            found[Path(path).stem][kind].add((check["check_id"], starts[path].index(check["file_line_range"][0])))
    return found


def suppressions(template: dict) -> dict[tuple[str, int], str]:
    """(check id, resource index) -> reason of every suppression in ``template``."""
    found = {}
    for index, body in enumerate(template["resources"]):
        for entry in body.get("metadata", {}).get("checkov", []):
            check, reason = entry.split(":", 1)
            found[(check, index)] = reason
    return found


def without_suppressions(template: dict) -> dict:
    """A copy of ``template`` with every resource's checkov suppressions removed."""
    bare = json.loads(json.dumps(template))
    for body in bare["resources"]:
        body.get("metadata", {}).pop("checkov", None)
        if body.get("metadata") == {}:
            del body["metadata"]
    return bare


def with_plain_http(template: dict) -> dict:
    """A copy of ``template`` whose storage account allows plain HTTP (a finding)."""
    opened = json.loads(json.dumps(template))
    one_of_type(opened, "Microsoft.Storage/storageAccounts")["properties"]["supportsHttpsTrafficOnly"] = False
    return opened


@pytest.fixture(scope="module")
def scans(template, tmp_path_factory) -> dict[str, dict[str, set[tuple[str, int]]]]:
    """checkov's findings on the template as built, without its suppressions, and with plain HTTP allowed."""
    return run_checkov({"predictd": template, "bare": without_suppressions(template),
                        "open": with_plain_http(template)}, tmp_path_factory.mktemp("checkov"))


def test_checkov_finds_nothing_unsuppressed(template, scans):
    results = scans["predictd"]
    assert results["failed_checks"] == set()
    assert results["skipped_checks"] == set(suppressions(template))
    assert all(len(reason) > 40 for reason in suppressions(template).values())  # a reason, not a label


def test_every_suppression_answers_a_finding(template, scans):
    """Without its suppressions the template fails exactly the suppressed checks, on the same resources."""
    assert suppressions(template) and not suppressions(without_suppressions(template))
    results = scans["bare"]
    assert results["skipped_checks"] == set()
    assert results["failed_checks"] == set(suppressions(template))


def test_no_resource_name_hides_findings_from_checkov(template):
    """checkov 3.3 drops the failed checks of resources whose name holds these functions (unrendered names:
    arm/utils.py, filter_failed_checks_with_unrendered_resources); a toLower() in a name hid five findings."""
    hiding = ("toLower(", "trim(", "join(", "split(", "substring(")
    for body in template["resources"]:
        assert not any(function in body["name"] for function in hiding), body["name"]


def test_a_new_finding_fails_the_scan(template, scans):
    """The scan is live: allowing plain HTTP to the storage account is a finding."""
    assert ("CKV_AZURE_3", 0) in scans["open"]["failed_checks"]
    assert ("CKV_AZURE_3", 0) not in scans["predictd"]["failed_checks"]  # the same check, passed as built


def test_make_synth_path(tmp_path):
    assert write_template(tmp_path / "cdk.out" / "azure" / "predictd.json").is_file()
