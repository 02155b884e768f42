"""ChromImpute's wiggle in and out, and (when Debian's chromimpute is installed) its whole pipeline."""

import gzip
import shutil

import numpy as np
import pytest

from predictd_core.errors import PredictdInputError

from bench.accuracy.methods.chromimpute import JAR, ChromImputeMethod, read_fixed_step_wig, write_fixed_step_wig
from bench.accuracy.problem import prepare_problem
from tests.bench_accuracy.conftest import write_mini_pilot

chromimpute_installed = pytest.mark.skipif(shutil.which("java") is None or not JAR.is_file(),
                                           reason="Debian's chromimpute is not installed (bench/accuracy/install.sh)")


def test_a_track_with_gaps_goes_out_and_back_unchanged(tmp_path):
    values = np.array([np.nan, 1.25, 0.0, 3.5, np.nan, np.nan, 7.0, 0.125])
    path = tmp_path / "t.wig.gz"
    write_fixed_step_wig(path, values)
    with gzip.open(path, "rt") as handle:
        headers = [line for line in handle if line.startswith("fixedStep")]
    assert headers == ["fixedStep chrom=bench start=26 step=25 span=25\n",
                       "fixedStep chrom=bench start=151 step=25 span=25\n"]
    np.testing.assert_array_equal(read_fixed_step_wig(path, values.size), values)


def test_chromimputes_own_output_layout_is_read(tmp_path):
    """As ChromImpute's Apply writes it: a track line, a header with two spaces, two decimals."""
    path = tmp_path / "bench_impute_E065_H3K4me3.wig.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("track type=wiggle_0 name=E065_H3K4me3_imputed\n"
                     "fixedStep  chrom=bench start=1 step=25 span=25\n0\n1.5\n2.25\n")
    np.testing.assert_array_equal(read_fixed_step_wig(path, 4), [0.0, 1.5, 2.25, np.nan])


@pytest.mark.parametrize("text, field, says", [
    ("fixedStep chrom=chr1 start=1 step=25 span=25\n1\n", "line 1", "chrom=bench"),
    ("fixedStep chrom=bench start=1 step=50 span=50\n1\n", "line 1", "step=25"),
    ("variableStep chrom=bench span=25\n1 2\n", "line 1", "fixedStep"),
    ("fixedStep chrom=bench start=51 step=25 span=25\n1\n2\n", "line 1", "past the 3 bins"),
    ("track type=wiggle_0\n1\n", "line 2", "before a fixedStep header"),
])
def test_a_wiggle_the_reader_cannot_place_is_refused(tmp_path, text, field, says):
    path = tmp_path / "bad.wig"
    path.write_text(text)
    with pytest.raises(PredictdInputError) as caught:
        read_fixed_step_wig(path, 3)
    assert caught.value.source == str(path) and caught.value.field == field and says in caught.value.message


@chromimpute_installed
def test_chromimpute_imputes_the_five_targets(tmp_path):
    """On 1,000 bins: ChromImpute's default windows find no training positions in a few hundred."""
    problem = prepare_problem(tmp_path / "problem", write_mini_pilot(tmp_path / "pilot", 1000))
    (tmp_path / "chromimpute").mkdir()
    tracks = ChromImputeMethod().impute(problem, tmp_path / "chromimpute")
    observed = problem.observed()
    assert sorted(tracks) == sorted(t.name for t in problem.targets)
    for name, track in tracks.items():
        assert track.shape == (problem.n_bins,) and not np.isnan(track).any()
        # Bin for bin: the planted genome signal is independent between bins, so a track read back one
        # bin off would correlate with the observed one no better than noise.
        in_place = np.corrcoef(track, observed[name])[0, 1]
        shifted = [np.corrcoef(track[1:], observed[name][:-1])[0, 1], np.corrcoef(track[:-1], observed[name][1:])[0, 1]]
        assert in_place > 0.1 and in_place > max(shifted) + 0.1, (name, in_place, shifted)
