"""on_data: new or replaced data under data/ reprocesses exactly the configs that use it, one run per config
for all the objects that arrive before its batch is due (the handlers' environment makes it due at once;
the scheduled tick starts it)."""

from __future__ import annotations

from handlers import on_config, on_data, on_schedule
from predictd_core.cloud.schedule import track_locations
from tests.handlers.conftest import (ledger_of, BUCKET, PILOT_CONFIG, PILOT_TRACKS, TABLE, drop_config, tracks_table,
                                     upload_compendium)

OTHER_CONFIG = PILOT_CONFIG.replace("data/pilot", "data/other")


def runs_by_config(cloud) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for run in ledger_of(cloud).runs():
        runs.setdefault(run["config"]["url"].rsplit("/", 1)[-1], []).append(run)
    return runs


def deployment_with_two_configs(cloud, ended: bool = True) -> None:
    """configs/pilot.yaml on data/pilot, configs/other.yaml on data/other, an invalid config and one whose
    tracks table is not there yet, all started; their runs ``ended`` (a config's reprocessing waits for
    its run in flight)."""
    upload_compendium(cloud, "data/pilot")
    upload_compendium(cloud, "data/other", PILOT_TRACKS[:3])
    future = PILOT_CONFIG.replace("data/pilot/tracks.tsv", "data/future/tracks.tsv")  # a table not uploaded yet
    for name, text in (("pilot", PILOT_CONFIG), ("other", OTHER_CONFIG), ("broken", "tracks: [\n"),
                       ("future", future)):
        on_config.handler(drop_config(cloud, name, text), None)
    if ended:
        for run in ledger_of(cloud).runs():
            ledger_of(cloud).transition_run(run["run_id"], "SUCCEEDED", ("PREPARING",))


def test_a_replaced_bigwig_reprocesses_the_config_whose_table_lists_it(cloud):
    deployment_with_two_configs(cloud)
    [event] = cloud.put("data/pilot/E003.H3K4me3.bigWig", "new signal")
    data_version = event["Records"][0]["s3"]["object"]["versionId"]

    [queued] = on_data.handler(event, None)["queued"]
    again = on_data.handler(event, None)["queued"]  # re-delivered
    assert queued["config"] == f"s3://{BUCKET}/configs/pilot.yaml" and again == [queued]  # nothing added
    [run] = on_schedule.handler({}, None)["done"]
    assert on_schedule.handler({}, None)["done"] == []  # the batch has its run

    assert run["created"] and run["state"] == "PREPARING" and run["objects"] == 1
    runs = runs_by_config(cloud)
    assert [len(runs[name]) for name in ("pilot.yaml", "other.yaml", "broken.yaml")] == [2, 1, 1]
    reprocessing = [r for r in runs["pilot.yaml"] if r["run_id"] == run["run_id"]][0]
    assert reprocessing["trigger"] == {"kind": "data", "url": f"s3://{BUCKET}/data/pilot/E003.H3K4me3.bigWig",
                                       "version_id": queued["batch"],
                                       "objects": [f"s3://{BUCKET}/data/pilot/E003.H3K4me3.bigWig"]}
    assert data_version  # the batch, not one object's version, names the run
    assert reprocessing["config"] == runs["pilot.yaml"][0]["config"]  # the same config version, a new run
    prepare = cloud.job_run("folds", f"s3://{BUCKET}/runs/{run['run_id']}/config.yaml")
    assert prepare["tags"]["predictd:run"] == run["run_id"]
    assert len(cloud.job_runs()) == 4  # pilot, other, future, and the one reprocessing run
    assert cloud.text(f"runs/{run['run_id']}/config.yaml") == cloud.text(
        f"runs/{runs['pilot.yaml'][0]['run_id']}/config.yaml").replace(runs["pilot.yaml"][0]["run_id"], run["run_id"])


def test_a_grown_tracks_table_reprocesses_its_config_only(cloud):
    deployment_with_two_configs(cloud)
    [unlisted] = cloud.put("data/other/E004.H3K27me3.bigWig", "signal")
    assert on_data.handler(unlisted, None) == {"queued": []}  # the table does not list it yet
    [event] = cloud.put("data/other/tracks.tsv", tracks_table(PILOT_TRACKS))

    on_data.handler(event, None)
    [run] = on_schedule.handler({}, None)["done"]

    assert run["run_id"].startswith("other-") and len(runs_by_config(cloud)["other.yaml"]) == 2
    assert len(runs_by_config(cloud)["pilot.yaml"]) == 1


def test_data_no_config_uses_starts_nothing(cloud):
    deployment_with_two_configs(cloud)
    for key in ("data/pilot/notes.txt", "data/elsewhere/tracks.tsv", "data/pilot/E003.H3K4me3.bigWig.bak"):
        [event] = cloud.put(key, "bytes")
        assert on_data.handler(event, None) == {"queued": []}
    assert on_schedule.handler({}, None)["done"] == [] and len(cloud.job_runs()) == 3


def test_shared_chrom_sizes_reprocess_every_config_naming_them(cloud):
    deployment_with_two_configs(cloud)
    on_config.handler(drop_config(cloud, "shared", OTHER_CONFIG.replace("data/other/chrom.sizes",
                                                                        "data/pilot/chrom.sizes")), None)
    [shared] = [run for run in ledger_of(cloud).runs() if run["run_id"].startswith("shared-")]
    ledger_of(cloud).transition_run(shared["run_id"], "SUCCEEDED", ("PREPARING",))
    [event] = cloud.put("data/pilot/chrom.sizes", "chr1\t6000\n")

    on_data.handler(event, None)
    runs = on_schedule.handler({}, None)["done"]

    assert sorted(run["run_id"].split("-")[0] for run in runs) == ["future", "pilot", "shared"]


def test_a_hundred_replaced_bigwigs_start_one_run_per_config(cloud, monkeypatch):
    """Replacing every track at once (twice each: S3 delivers at least once) reprocesses each config once,
    after the batch is due; a config with a run in flight waits for it."""
    from handlers.aws.runtime import runtime

    monkeypatch.setenv("PREDICTD_REPROCESS_DELAY", "3600")
    runtime.cache_clear()
    deployment_with_two_configs(cloud, ended=False)
    events = [cloud.put(f"data/pilot/{('E003', 'E004')[n % 2]}.H3K4me3.bigWig", f"signal {n}")[0] for n in range(100)]
    for event in events + events:
        on_data.handler(event, None)
    assert on_schedule.handler({}, None)["done"] == []  # not due for an hour
    batches = {item["config_key"]: item for item in ledger_of(cloud).waiting_reprocessing()}
    assert set(batches) == {"configs/pilot.yaml"}  # the one whose table lists them
    assert len(batches["configs/pilot.yaml"]["data"]) == 2  # E003 and E004's H3K4me3, each once

    monkeypatch.setattr("time.time", lambda: batches["configs/pilot.yaml"]["due_at"] + 1)
    done = on_schedule.handler({}, None)["done"]
    started = [item for item in done if "objects" in item]
    assert [item["run_id"].split("-")[0] for item in started].count("pilot") == 0  # pilot's first run is in flight
    pilot_runs = runs_by_config(cloud)["pilot.yaml"]
    first = pilot_runs[0]["run_id"]
    ledger_of(cloud).transition_run(first, "FAILED", ("PREPARING",), message="ended for the test")
    done = on_schedule.handler({}, None)["done"]
    assert [item["run_id"].split("-")[0] for item in done if "objects" in item] == ["pilot"]
    assert len(runs_by_config(cloud)["pilot.yaml"]) == 2


def test_track_locations_resolve_rows_against_the_table_folder():
    text = ("# comment\ncell_type\tassay\tpath\textra\n"
            "E1\tA\tE1.A.bigWig\tx\nE2\tA\t../shared/E2.A.bigWig\t\nE3\tA\ts3://other/E3.bigWig\t\n"
            "E4\tA\thttps://host/E4.bigWig\t\n")
    assert track_locations(text, "s3://b/data/pilot/tracks.tsv") == [
        "s3://b/data/pilot/E1.A.bigWig", "s3://b/data/shared/E2.A.bigWig", "s3://other/E3.bigWig",
        "https://host/E4.bigWig"]
    assert track_locations("no header here\n", "s3://b/data/tracks.tsv") == []
