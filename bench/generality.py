"""Beyond the pilot's 5 x 5 grid: the default on the real Roadmap layout, PREDICTD's test split held out.

The refinement stage (``model.refine``) was designed on the pilot's 25 real tracks; only its blend and
the tensor model's share are chosen by inner validation. Tracks we do not have cannot be scored, so this checks the next best thing: a
grid of the real Roadmap shape (127 cells x 24 assays, the same 1,014 observed experiments and holes,
planted structure and noise: ``predictd simulate --layout``), where the tensor model has 811 tracks to
learn from and the average baseline is no longer the strongest guess. The 203 experiments of PREDICTD's
test split (``../shared/data/roadmap-layout/predictd_splits.json``, as eDICE compared against PREDICTD)
are held out; one model is trained on the other 811, and every pair is imputed twice from it: with the
default (refinement on, blend and tensor share chosen by its own inner validation) and with ``refine: {enabled: false}``
(the tensor model alone, as PREDICTD imputed). Both are scored on the 203 held-out tracks beside the
average of the same assay in the other cells, by predictd's own evaluation.

    .venv/bin/python bench/generality.py --data /tmp/roadmap-131072 --bins 131072 --out /tmp/generality
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml
from jobs import LAYOUT, compendium, write_config

from predictd_core import pipeline
from predictd_core.config import load_config
from predictd_core.engine import make_engine
from predictd_core.evaluate.tables import summary_rows
from predictd_core.impute.refine import SCORED, read_refinement
from predictd_core.impute.trained_run import single_model_run


def test_split() -> list[str]:
    """PREDICTD's 203 test experiments as holdout names (``CELL:ASSAY``)."""
    splits = json.loads((LAYOUT / "predictd_splits.json").read_text())
    return [name.replace("-", ":", 1) for name in splits["test"]]


def variant_config(data: Path, out: Path, name: str, refine: dict):
    """The run config of one variant: the compendium's store, the test split held out, ``model.refine``."""
    path = write_config(data, out / name, {"kind": "numpy"}, {"refine": refine})
    config = yaml.safe_load(path.read_text())
    config["holdout"] = test_split()
    path.write_text(yaml.safe_dump(config))
    return load_config(path)


def means_and_wins(rows: list[dict]) -> dict[str, dict]:
    """Per measure, over every held-out track: the means and the wins against the baseline
    (:func:`~predictd_core.evaluate.tables.summary_rows`, scope ``all``)."""
    return {row["measure"]: row for row in summary_rows(rows) if row["scope"] == "all"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Roadmap-shaped compendium (simulated if absent)")
    parser.add_argument("--bins", type=int, default=131_072)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = compendium(args.data, args.bins)
    default = variant_config(data, args.out, "default", {})
    tensor = variant_config(data, args.out, "tensor-only", {"enabled": False})
    store = pipeline.prepare_store(default)
    engine = make_engine(default.engine, store)
    try:
        started = time.perf_counter()
        model = pipeline.run_train(default, store, engine)
        seconds = {"train": time.perf_counter() - started}
        results = {}
        for name, config in (("default", default), ("tensor-only", tensor)):
            run = single_model_run(config, store, model)
            started = time.perf_counter()
            results[name] = pipeline.publish(config, store, run, engine).rows
            seconds[name] = time.perf_counter() - started
    finally:
        engine.close()
    blends = [(r["blend"], r["tensor"]) for r in read_refinement(default) or []]
    summaries = {name: means_and_wins(rows) for name, rows in results.items()}
    n = len(results["default"])
    print(f"{store.bins.n_bins:,} bins, 1,014 experiments, {n} held out (PREDICTD's test split); model rank "
          f"{model.rank_}, best sweep {model.best_iteration_}; refinement (blend, tensor share) {blends}; seconds "
          + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    print()
    print("| measure | default (refined) | tensor only | baseline | default beats baseline on | tensor beats baseline on |")
    print("|---|---|---|---|---|---|")
    for m in SCORED:
        d, t = summaries["default"][m], summaries["tensor-only"][m]
        print(f"| {m} | {d['predictd_mean']:.4f} | {t['predictd_mean']:.4f} | {d['baseline_mean']:.4f} | "
              f"{d['wins']} of {n} | {t['wins']} of {n} |")


if __name__ == "__main__":
    main()
