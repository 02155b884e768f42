"""ChromImpute (Ernst & Kellis 2015), Debian's ``chromimpute`` 1.0.3, through its documented pipeline.

The 20 training tracks go in as -log10 p (``sinh`` of the store's arcsinh values), one fixedStep
wiggle each, on one pseudo-contig whose 25 bp bin i is the store's bin i (as the pilot tracks are
themselves concatenated regions). Then, with ChromImpute's defaults: ``Convert`` (25 bp bins),
``ComputeGlobalDist``, ``GenerateTrainData`` for each target mark, ``Train`` and ``Apply`` for each
target; its imputed wiggles are read back onto the store's bins and returned as arcsinh.
ChromImpute keeps two decimals of the converted signal.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictd_core.errors import PredictdInputError

from bench.accuracy.methods.errors import MethodUnavailable
from bench.accuracy.problem import BIN_SIZE, Problem

JAR = Path("/usr/share/java/chromimpute.jar")
CONTIG = "bench"


def write_fixed_step_wig(path: Path, values: np.ndarray, contig: str = CONTIG, bin_size: int = BIN_SIZE) -> None:
    """``values`` (one per bin) as a gzipped fixedStep wiggle, one block per run of bins with data."""
    present = ~np.isnan(values)
    edges = np.flatnonzero(np.diff(np.concatenate([[False], present, [False]]).astype(np.int8)))
    with gzip.open(path, "wt") as handle:
        for lo, hi in zip(edges[::2], edges[1::2]):
            handle.write(f"fixedStep chrom={contig} start={lo * bin_size + 1} step={bin_size} span={bin_size}\n")
            handle.write("".join(f"{value:.4f}\n" for value in values[lo:hi]))


def read_fixed_step_wig(path: Path, n_bins: int, contig: str = CONTIG, bin_size: int = BIN_SIZE) -> np.ndarray:
    """A (gzipped) fixedStep wiggle of ``contig`` at ``bin_size`` steps as one value per bin (NaN: none).

    Raises
    ------
    PredictdInputError
        Naming the file and line: another contig or step, a variableStep block, a value before any
        header or a bin past ``n_bins``.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        lines = handle.read().split("\n")
    track = np.full(n_bins, np.nan)
    headers = [k for k, line in enumerate(lines) if not (line[:1].isdigit() or line[:1] in ("-", "."))]
    for where, after in zip(headers, [*headers[1:], len(lines)]):
        line = lines[where]
        if line.startswith("track") or not line.strip():
            if any(lines[where + 1:after]):
                raise PredictdInputError(str(path), f"line {where + 2}", "values before a fixedStep header")
            continue
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        if not line.startswith("fixedStep") or fields.get("chrom") != contig or int(fields.get("step", 0)) != bin_size:
            raise PredictdInputError(str(path), f"line {where + 1}", f"expected 'fixedStep chrom={contig} "
                                     f"step={bin_size} ...', got {line!r}")
        values = np.array([v for v in lines[where + 1:after] if v], dtype=np.float64)
        first = (int(fields["start"]) - 1) // bin_size
        if first + values.size > n_bins:
            raise PredictdInputError(str(path), f"line {where + 1}", f"block runs past the {n_bins} bins")
        track[first:first + values.size] = values
    return track


@dataclass(frozen=True)
class ChromImputeMethod:
    """ChromImpute's Convert -> ComputeGlobalDist -> GenerateTrainData -> Train -> Apply on the training tracks."""

    java_heap: str = "4g"
    name: str = "chromimpute"

    def check(self) -> None:
        """MethodUnavailable unless java and ChromImpute's jar are installed."""
        self.command()

    def command(self) -> list[str]:
        """The java command line that runs ChromImpute; MethodUnavailable when it is not installed."""
        java = shutil.which("java")
        if java is None or not JAR.is_file():
            raise MethodUnavailable(f"chromimpute: needs java and {JAR} (Debian package chromimpute); "
                                    "install with: bash bench/accuracy/install.sh")
        return [java, f"-Xmx{self.java_heap}", "-jar", str(JAR)]

    def impute(self, problem: Problem, work: Path) -> dict[str, np.ndarray]:
        """Run the pipeline in ``work``; the targets' imputed tracks, arcsinh, on the store's bins."""
        chromimpute = self.command()
        folders = {name: work / name for name in ("input", "converted", "distance", "traindata", "predictors",
                                                  "imputed", "logs")}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        info, chrom = work / "inputinfo.txt", work / "chrominfo.txt"
        rows = []
        for (cell, assay), values in problem.training_tracks().items():
            name = f"{cell}.{assay}.wig.gz"
            write_fixed_step_wig(folders["input"] / name, np.sinh(values))
            rows.append(f"{cell}\t{assay}\t{name}\n")
        info.write_text("".join(rows))
        chrom.write_text(f"{CONTIG}\t{problem.n_bins * BIN_SIZE}\n")

        def run(step: str, *arguments, tag: str = "") -> None:
            log = folders["logs"] / f"{step}{tag}.log"
            with open(log, "w") as handle:
                done = subprocess.run([*chromimpute, step, *map(str, arguments)], stdout=handle,
                                      stderr=subprocess.STDOUT, cwd=work)
            if done.returncode != 0:
                raise RuntimeError(f"chromimpute {step} failed (exit {done.returncode}); see {log}")

        run("Convert", folders["input"], info, chrom, folders["converted"])
        run("ComputeGlobalDist", folders["converted"], info, chrom, folders["distance"])
        for assay in dict.fromkeys(target.assay for target in problem.targets):
            run("GenerateTrainData", folders["converted"], folders["distance"], info, chrom, folders["traindata"],
                assay, tag=f"-{assay}")
        for target in problem.targets:
            tag = f"-{target.cell_type}-{target.assay}"
            run("Train", folders["traindata"], info, folders["predictors"], target.cell_type, target.assay, tag=tag)
            run("Apply", folders["converted"], folders["distance"], folders["predictors"], info, chrom,
                folders["imputed"], target.cell_type, target.assay, tag=tag)
        return {target.name: np.arcsinh(read_fixed_step_wig(
                    folders["imputed"] / f"{CONTIG}_impute_{target.cell_type}_{target.assay}.wig.gz", problem.n_bins))
                for target in problem.targets}
