"""The Azure storage adapters of the cloud ports against Azurite, with real round trips.

* ``BlobStore`` (ObjectStore): keys map to container + blob, a version is the blob's ETag, a replaced blob's
  old version reads None, copies are server-side and leave tags behind, scratch tags are blob index tags.
* ``TableRecords`` (Records): create-if-absent, compare-and-swap replaces that lose no update under 20
  concurrent writers, nested attributes, escaped keys, prefix queries that stop at their neighbours.
* ``QueueNotifier`` (Notifier): one Base64 JSON message per notice.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from handlers.azure.notifier import MAX_MESSAGE, QueueNotifier
from handlers.azure.records import TableRecords, decode_key, encode_key
from handlers.azure.store import BlobStore, split_key
from predictd_core.cloud.contract import FOLD, SCRATCH_TAG, Job, JobSpec, ObjectVersion, RunLayout
from predictd_core.cloud.ledger import Ledger
from predictd_core.cloud.settings import AzureSettings, load_azure_settings
from tests.azure_support import create_containers

THREADS = 20


@pytest.fixture(scope="module")
def credential(azurite) -> AzureNamedKeyCredential:
    return AzureNamedKeyCredential(azurite.account, azurite.key)


@pytest.fixture(scope="module")
def settings(azurite) -> AzureSettings:
    """Settings as the function app reads them from its environment, pointed at Azurite."""
    return load_azure_settings({
        "PREDICTD_STORAGE_ACCOUNT": azurite.account, "PREDICTD_BLOB_ENDPOINT": azurite.blob_endpoint,
        "PREDICTD_TABLE_ENDPOINT": azurite.table_endpoint, "PREDICTD_QUEUE_ENDPOINT": azurite.queue_endpoint,
        "PREDICTD_NOTICE_QUEUE": f"notices-{uuid.uuid4().hex[:8]}",
        "PREDICTD_BATCH_ENDPOINT": "http://127.0.0.1:9/batch",
        "PREDICTD_IMAGE": "predictd.azurecr.io/predictd:test"})


@pytest.fixture(scope="module")
def service(azurite):
    return create_containers(azurite)


@pytest.fixture(scope="module")
def store(service, settings, credential) -> BlobStore:
    return BlobStore.from_settings(settings, credential)


@pytest.fixture
def prefix() -> str:
    """A run folder of this test alone (the session's tests share one account)."""
    return f"runs/t{uuid.uuid4().hex[:10]}/"


@pytest.fixture
def records(azurite, credential):
    """A fresh ledger table for one test."""
    table = f"ledger{uuid.uuid4().hex[:12]}"
    tables = TableServiceClient(endpoint=azurite.table_endpoint, credential=credential)
    tables.create_table(table)
    yield TableRecords(azurite.table_endpoint, table, credential)
    tables.delete_table(table)


# ------------------------------------------------------------------------------------------ BlobStore


def test_keys_name_a_container_and_a_blob(service, store):
    assert split_key("configs/pilot.yaml") == ("configs", "pilot.yaml")
    assert split_key("runs/r1/attempts/a/model.json") == ("runs", "r1/attempts/a/model.json")
    with pytest.raises(ValueError, match="'pilot.yaml': expected CONTAINER/NAME"):
        split_key("pilot.yaml")
    assert store.root == "az://" and store.cloud == "azure"
    store.put("configs/keys-test.yaml", b"a: 1\n", "application/yaml")
    blob = service.get_blob_client("configs", "keys-test.yaml")
    assert blob.download_blob().readall() == b"a: 1\n"
    assert blob.get_blob_properties().content_settings.content_type == "application/yaml"


def test_a_version_is_the_etag_and_a_replaced_blob_reads_none(service, store, prefix):
    key = f"{prefix}config.yaml"
    assert store.read_current(key) is None
    store.put(key, b"first", "text/plain")
    first, payload = store.read_current(key)
    etag = service.get_blob_client(*split_key(key)).get_blob_properties().etag
    assert payload == b"first"
    assert first == ObjectVersion(cloud="azure", store="devstoreaccount1", key=key, version_id=etag.strip('"'))
    assert first.url == f"az://{key}" and not first.version_id.startswith('"')  # as Event Grid's data.eTag
    assert store.read_version(first) == "first"
    assert store.read_version(first.model_copy(update={"version_id": f'"{first.version_id}"'})) == "first"

    store.put(key, b"second", "text/plain")
    second, payload = store.read_current(key)
    assert payload == b"second" and second.version_id != first.version_id
    assert store.read_version(first) is None  # the old ETag no longer matches: that version is gone
    assert store.read_version(second) == "second"
    store.delete(key)
    assert store.read_version(second) is None and store.read_current(key) is None
    store.delete(key)  # deleting what is gone is no error
    with pytest.raises(ValueError, match="storage account 'other'"):
        store.read_version(second.model_copy(update={"store": "other"}))


def test_keys_list_one_container_under_a_prefix_and_never_a_neighbour(store, prefix):
    run = prefix.rstrip("/")
    for key in (f"{run}/a.txt", f"{run}/sub/b.txt", f"{run}0/c.txt", f"{run}1/sub/d.txt"):
        store.put(key, b"x", "text/plain")
    assert store.keys(f"{run}/") == [f"{run}/a.txt", f"{run}/sub/b.txt"]
    assert store.keys(f"{run}/sub/") == [f"{run}/sub/b.txt"]
    assert store.keys(run) == sorted([f"{run}/a.txt", f"{run}/sub/b.txt", f"{run}0/c.txt", f"{run}1/sub/d.txt"])
    assert store.keys("nosuchcontainer/x/") == []
    store.put("configs/listed.yaml", b"x", "text/plain")
    assert "configs/listed.yaml" in store.keys("conf") and "configs/listed.yaml" in store.keys("")
    assert not [key for key in store.keys("conf") if not key.startswith("configs/")]


def test_copy_is_whole_and_leaves_the_tags_behind(service, store, prefix):
    source, target = f"{prefix}attempts/test0-valid0/attempt-1/model.json", f"{prefix}models/test0-valid0/model.json"
    store.put(source, b'{"model": 1}', "application/json")
    store.tag_scratch(source)
    store.copy(source, target)
    copied = service.get_blob_client(*split_key(target))
    assert copied.download_blob().readall() == b'{"model": 1}'
    assert copied.get_blob_properties().content_settings.content_type == "application/json"
    assert copied.get_blob_tags() == {}  # a promoted model must not expire with its attempt
    store.put(source, b'{"model": 2}', "application/json")
    store.copy(source, target)  # a second promotion replaces the copy
    assert copied.download_blob().readall() == b'{"model": 2}'
    with pytest.raises(Exception, match="BlobNotFound|CannotVerifyCopySource|does not exist"):
        store.copy(f"{prefix}missing", f"{prefix}copy-of-missing")


def test_tag_scratch_sets_the_blob_index_tag_the_lifecycle_rule_filters_on(service, store, prefix):
    key = f"{prefix}attempts/test1-valid0/attempt-1/factors.npz"
    store.put(key, b"npz", "application/octet-stream")
    store.tag_scratch(key)
    name, value = SCRATCH_TAG
    assert service.get_blob_client(*split_key(key)).get_blob_tags() == {name: value}


# --------------------------------------------------------------------------------------- TableRecords


def test_keys_are_escaped_reversibly_and_keep_prefixes():
    for value in ("RUN#pilot-0123", "JOB#test1-valid0#001", "a/b\\c?d%e#", "tab\there", "100%", "%23", ""):
        encoded = encode_key(value)
        assert decode_key(encoded) == value
        assert not set(encoded) & set("/\\#?\t")
    assert encode_key("JOB#test1-valid0#001").startswith(encode_key("JOB#test1-valid0#"))
    assert not encode_key("JOB#test10-valid0#001").startswith(encode_key("JOB#test1#"))
    assert encode_key("%23") != encode_key("#")


def test_put_new_creates_once(records):
    item = {"pk": "RUN#r1", "sk": "RUN", "version": 1, "state": "PLANNED"}
    assert records.put_new(item) is True
    assert records.put_new({**item, "state": "OTHER"}) is False
    assert records.get("RUN#r1", "RUN") == item
    assert records.get("RUN#r1", "JOB#prepare#001") is None


def test_nested_and_typed_attributes_round_trip(records):
    item = {"pk": "RUN#a/b?c\\d#e%f", "sk": "JOB#test1-valid0#001", "version": 1,
            "arguments": ["train", "az://configs/pilot.yaml", "--test-fold", "1"],
            "outputs": [{"path": "imputed/E003.H3K4me3.bigWig", "bytes": 12}],
            "cv": {"n_test": 5, "n_valid": 2, "nested": {"deep": [1, 2.5, None, True]}},
            "message": '["looks", "like", "json"]', "promoted": True, "rate": 0.25, "n_test": 5,
            "big": 2**40, "negative": -(2**35), "empty": [], "text": "", "gone": None}
    assert records.put_new(item)
    back = records.get(item["pk"], item["sk"])
    assert back == {k: v for k, v in item.items() if v is not None}  # None is left out, as on DynamoDB
    assert isinstance(back["version"], int) and isinstance(back["message"], str)
    with pytest.raises(ValueError, match="attribute 'bad-name'"):
        records.put_new({"pk": "p", "sk": "s", "version": 1, "bad-name": 1})
    with pytest.raises(ValueError, match="attribute '_json'"):
        records.put_new({"pk": "p", "sk": "s", "version": 1, "_json": "x"})


def test_replace_needs_the_expected_version(records):
    records.put_new({"pk": "RUN#r", "sk": "RUN", "version": 1, "state": "PLANNED"})
    assert records.replace({"pk": "RUN#r", "sk": "RUN", "version": 3, "state": "X"}, expected_version=2) is False
    assert records.replace({"pk": "RUN#r", "sk": "RUN", "version": 2, "state": "RUNNING",
                            "jobs": ["prepare"]}, expected_version=1) is True
    assert records.replace({"pk": "RUN#r", "sk": "RUN", "version": 2, "state": "LATE"}, expected_version=1) is False
    assert records.get("RUN#r", "RUN") == {"pk": "RUN#r", "sk": "RUN", "version": 2, "state": "RUNNING",
                                           "jobs": ["prepare"]}
    assert records.replace({"pk": "RUN#none", "sk": "RUN", "version": 2}, expected_version=1) is False


def test_of_writers_replacing_the_same_version_exactly_one_wins(records):
    """20 threads read the same version, then all replace it: one True per round, every round."""
    records.put_new({"pk": "RUN#race", "sk": "RUN", "version": 1, "winner": -1})
    rounds = 10
    barrier = threading.Barrier(THREADS, timeout=120)  # a failing writer breaks it, no hang
    wins: list[list[int]] = [[] for _ in range(rounds)]

    def writer(me: int) -> None:
        for round_ in range(rounds):
            item = records.get("RUN#race", "RUN")
            barrier.wait()  # everybody holds the same version before anybody writes
            if records.replace({**item, "version": item["version"] + 1, "winner": me}, item["version"]):
                wins[round_].append(me)
            barrier.wait()

    _in_threads(writer)
    assert [len(round_) for round_ in wins] == [1] * rounds
    final = records.get("RUN#race", "RUN")
    assert final["version"] == 1 + rounds and final["winner"] == wins[-1][0]


def test_compare_and_swap_loses_no_update_under_contention(records):
    """20 threads each add their name 3 times with read-compare-swap retries: all 60 adds survive."""
    records.put_new({"pk": "RUN#counter", "sk": "RUN", "version": 1, "adds": []})
    per_thread = 3

    def adder(me: int) -> None:
        for n in range(per_thread):
            while True:
                item = records.get("RUN#counter", "RUN")
                new = {**item, "version": item["version"] + 1, "adds": [*item["adds"], f"{me}.{n}"]}
                if records.replace(new, item["version"]):
                    break

    _in_threads(adder)
    final = records.get("RUN#counter", "RUN")
    assert final["version"] == 1 + THREADS * per_thread
    assert sorted(final["adds"]) == sorted(f"{me}.{n}" for me in range(THREADS) for n in range(per_thread))


def test_query_prefixes_stop_at_their_neighbours_and_scan_filters_by_sort_key(records):
    keys = [("RUN#x1", "RUN"), ("RUN#x1", "JOB#test1-valid0#001"), ("RUN#x1", "JOB#test1-valid0#002"),
            ("RUN#x1", "JOB#test10-valid0#001"), ("RUN#x1", "JOB#test1-valid1#001"), ("RUN#x1", "job:test1"),
            ("RUN#x1", "job:test10"), ("RUN#x1", "job:test1/a"), ("RUN#x10", "RUN"),
            ("RUN#x10", "JOB#test1-valid0#001"), ("JOBRUN#j1", "JOBRUN")]
    for pk, sk in keys:
        assert records.put_new({"pk": pk, "sk": sk, "version": 1})

    def sks(pk: str, prefix: str) -> list[str]:
        items = records.query(pk, prefix)
        assert all(item["pk"] == pk for item in items)
        return sorted(item["sk"] for item in items)

    assert sks("RUN#x1", "JOB#test1-valid0#") == ["JOB#test1-valid0#001", "JOB#test1-valid0#002"]
    assert sks("RUN#x1", "JOB#test1#") == []
    assert sks("RUN#x1", "JOB#test1") == ["JOB#test1-valid0#001", "JOB#test1-valid0#002", "JOB#test1-valid1#001",
                                          "JOB#test10-valid0#001"]
    assert len(sks("RUN#x1", "JOB#")) == 4
    assert sks("RUN#x1", "job:test1/") == ["job:test1/a"]
    assert sks("RUN#x1", "job:test1") == ["job:test1", "job:test1/a", "job:test10"]
    assert len(sks("RUN#x1", "")) == 8
    assert sks("RUN#x10", "JOB#") == ["JOB#test1-valid0#001"]
    assert sks("RUN#x", "") == []
    assert sorted(item["pk"] for item in records.scan("RUN")) == ["RUN#x1", "RUN#x10"]
    assert [item["pk"] for item in records.scan("JOBRUN")] == ["JOBRUN#j1"]


def test_the_ledger_runs_on_table_storage(records):
    """The contract's ledger, written once, over this adapter: runs, attempts, pointers and states."""
    ledger = Ledger(records)
    assert ledger.create_run("pilot-0123", "RUNNING", config="az://configs/pilot.yaml", n_test=1, n_valid=2)
    assert not ledger.create_run("pilot-0123", "RUNNING")
    spec = JobSpec.for_attempt(RunLayout("az://", "pilot-0123"), Job(FOLD, 0, 1), 1)
    attempt, claimed = ledger.claim_attempt(spec)
    assert claimed and attempt["arguments"] == spec.arguments and attempt["state"] == "STARTING"
    assert ledger.claim_attempt(spec)[1] is False  # a second handler starts nothing
    ledger.record_job_run(spec, "job-run-1")
    assert ledger.find_job_run("job-run-1") == ("pilot-0123", Job(FOLD, 0, 1), 1)
    assert ledger.record_state("pilot-0123", Job(FOLD, 0, 1), 1, "RUNNING", None)["state"] == "RUNNING"
    assert ledger.record_state("pilot-0123", Job(FOLD, 0, 1), 1, "SUBMITTED", None)["state"] == "RUNNING"  # late
    assert ledger.transition_run("pilot-0123", "SUCCEEDED", ("RUNNING",))
    assert not ledger.transition_run("pilot-0123", "FAILED", ("RUNNING",))
    assert [run["run_id"] for run in ledger.runs()] == ["pilot-0123"]
    summary = ledger.summary("pilot-0123")
    assert summary["state"] == "SUCCEEDED" and summary["cv"] == {"n_test": 1, "n_valid": 2}
    assert [(job["job"], job["attempts"]) for job in summary["jobs"]] == [
        ("prepare", 0), ("test0-valid0", 0), ("test0-valid1", 1), ("finish", 0)]


# -------------------------------------------------------------------------------------- QueueNotifier


def test_each_notice_is_one_base64_json_message(azurite, settings, credential):
    queue = QueueClient(account_url=azurite.queue_endpoint, queue_name=settings.notice_queue, credential=credential)
    queue.create_queue()
    notifier = QueueNotifier.from_settings(settings, credential)
    notifier.publish("predictd run SUCCEEDED: pilot-0123", {"run_id": "pilot-0123", "state": "SUCCEEDED"})
    notifier.publish("predictd run FAILED: other", {"run_id": "other", "outputs": ["a"] * 20000,
                                                    "message": "m" * 100_000})
    reader = QueueClient(account_url=azurite.queue_endpoint, queue_name=settings.notice_queue,
                         credential=credential, message_decode_policy=TextBase64DecodePolicy())
    assert reader.peek_messages(max_messages=1)[0].content.startswith('{"subject": "predictd run SUCCEEDED')
    raw = [message.content for message in queue.receive_messages(messages_per_page=32)]
    assert len(raw) == 2
    decoded = [json.loads(base64.b64decode(text)) for text in raw]  # what a Functions queue trigger decodes
    assert decoded[0] == {"subject": "predictd run SUCCEEDED: pilot-0123",
                          "body": {"run_id": "pilot-0123", "state": "SUCCEEDED"}}
    assert decoded[1]["body"] == {"run_id": "other", "message": "m" * 2000, "truncated": True}
    assert all(len(text) <= MAX_MESSAGE for text in raw)
    queue.delete_queue()


def _in_threads(work) -> None:
    """Run ``work(i)`` in THREADS threads at once; re-raise the first failure."""
    errors: list[BaseException] = []

    def guarded(me: int) -> None:
        try:
            work(me)
        except BaseException as error:  # noqa: BLE001 - reported in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(me,)) for me in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if errors:
        raise errors[0]
