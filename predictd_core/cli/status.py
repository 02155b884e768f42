"""``predictd status``: a cloud run's state, jobs and outputs, read from the run ledger (DynamoDB on AWS,
Table storage on Azure).

Each cloud's ledger comes from its adapter, found through the ``predictd.clouds`` entry points (the
handlers package declares them in pyproject.toml): the core imports no cloud SDK and no handler code, and
the SDK loads only when the command runs.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any, Iterator, Optional

import typer

from predictd_core.errors import PredictdInputError

CLOUD_ENTRY_POINTS = "predictd.clouds"


def status(run_id: Optional[str] = typer.Argument(None, help="the run (RUN_ID in runs/RUN_ID/); omit to list "
                                                 "the runs", show_default=False),
           bucket: Optional[str] = typer.Option(None, help="AWS: the deployment's bucket; its "
                                                "predictd:ledger-table tag names the ledger"),
           account: Optional[str] = typer.Option(None, help="Azure: the deployment's storage account (its "
                                                 "table predictdledger is the ledger)"),
           table: Optional[str] = typer.Option(None, help="the ledger table (AWS default: $PREDICTD_LEDGER_TABLE, "
                                               "else the bucket's tag)"),
           as_json: bool = typer.Option(False, "--json", help="print JSON (the same summary as runs/RUN_ID/run.json)")
           ) -> None:
    """Show a cloud run from the ledger: its state, every job (stage, fold, attempts, state, job run id)
    and its outputs. Without RUN_ID, list the runs. ``--account`` reads an Azure deployment, else AWS."""
    with cloud_ledger(account, bucket, table) as ledger:
        if run_id is None:
            runs = [_run_line(run) for run in ledger.runs()]
            typer.echo(json.dumps(runs, indent=2) if as_json else format_runs(runs))
            return
        summary = ledger.summary(run_id)
        if summary is None:
            raise PredictdInputError(f"ledger {ledger.records.name}", "RUN_ID",
                                     f"no run {run_id!r} (predictd status without RUN_ID lists the runs)")
    typer.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


def cancel(run_id: str = typer.Argument(..., help="the run to cancel (RUN_ID in runs/RUN_ID/)", show_default=False),
           bucket: Optional[str] = typer.Option(None, help="AWS: the deployment's bucket"),
           account: Optional[str] = typer.Option(None, help="Azure: the deployment's storage account"),
           table: Optional[str] = typer.Option(None, help="the ledger table (AWS default: $PREDICTD_LEDGER_TABLE, "
                                               "else the bucket's tag)"),
           ) -> None:
    """Cancel a cloud run: recorded in the ledger at once; the deployment's next tick (a minute on Azure,
    five on AWS) fails the run, stops its jobs, writes run.json and notifies. A run that ended is left."""
    import getpass

    with cloud_ledger(account, bucket, table) as ledger:
        run = ledger.run(run_id)
        if run is None:
            raise PredictdInputError(f"ledger {ledger.records.name}", "RUN_ID", f"no run {run_id!r}")
        if not ledger.request_cancel(run_id, by=getpass.getuser()):
            raise PredictdInputError(f"ledger {ledger.records.name}", "RUN_ID",
                                     f"run {run_id} has ended ({run['state']}); nothing to cancel")
    typer.echo(f"run {run_id}: cancel requested; its jobs stop at the deployment's next tick "
               f"(predictd status {run_id} shows FAILED then)")


@contextmanager
def cloud_ledger(account: Optional[str], bucket: Optional[str], table: Optional[str]) -> Iterator[Any]:
    """The ledger of the Azure deployment ``account``, else of the AWS one ``bucket`` (or ``table``); bad
    input and the cloud's errors inside the block become one line on stderr and exit code 2."""
    errors: tuple[type[BaseException], ...] = (PredictdInputError,)
    try:
        adapter = cloud_adapter("azure" if account else "aws")
        errors += tuple(adapter.ERRORS)
        yield adapter.open_ledger(account or bucket, table)
    except errors as error:
        typer.echo(f"predictd: error: {error}", err=True)
        raise typer.Exit(2)


def cloud_adapter(cloud: str) -> Any:
    """The module of ``cloud``'s status adapter (``open_ledger(store, table)`` and ``ERRORS``)."""
    found = {point.name: point for point in entry_points(group=CLOUD_ENTRY_POINTS)}
    if cloud not in found:
        raise PredictdInputError("command line", "--account/--bucket",
                                 f"no {cloud} adapter installed (pip install 'predictd[{cloud}]')")
    return found[cloud].load()


def _run_line(run: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run["run_id"], "state": run["state"], "created_at": run["created_at"],
            "updated_at": run["updated_at"], "config": (run.get("config") or {}).get("url"),
            "trigger": (run.get("trigger") or {}).get("url")}


def format_runs(runs: list[dict[str, Any]]) -> str:
    """One line per run: id, state, created, config (and the data object of a reprocessing run)."""
    if not runs:
        return "no runs"
    width = max(len(run["run_id"]) for run in runs)
    lines = [f"{'run':<{width}}  {'state':<10} {'created':<25} config"]
    for run in runs:
        trigger = f" (data: {run['trigger']})" if run["trigger"] not in (None, run["config"]) else ""
        lines.append(f"{run['run_id']:<{width}}  {run['state']:<10} {run['created_at']:<25} {run['config']}{trigger}")
    return "\n".join(lines)


def format_summary(summary: dict[str, Any]) -> str:
    """The run, a table of its jobs and its outputs, as text."""
    config, trigger = summary.get("config") or {}, summary.get("trigger") or {}
    lines = [f"run      {summary['run_id']}", f"state    {summary['state']}",
             f"config   {config.get('url')} (version {config.get('version_id')})"]
    if trigger.get("kind") == "data":
        lines.append(f"trigger  new data {trigger['url']} (version {trigger['version_id']})")
    lines.append(f"created  {summary['created_at']}   updated {summary['updated_at']}")
    if summary.get("message"):
        lines.append(f"message  {summary['message']}")
    if summary["cv"]:
        cv = summary["cv"]
        lines += ["", f"jobs ({cv['n_test']} test x {cv['n_valid']} validation folds = "
                      f"{cv['n_test'] * cv['n_valid']} fold models)"]
        rows = [("job", "stage", "attempts", "state", "job run id")]
        rows += [(job["job"], job["stage"], str(job["attempts"]), job["state"], job["job_run_id"] or "-")
                 for job in summary["jobs"]]
        widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]))]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if summary["outputs"]:
        lines += ["", "outputs", *(f"  {url}" for url in summary["outputs"])]
    return "\n".join(lines)
