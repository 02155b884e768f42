"""BED files as masks over genome bins, against masks worked out by hand.

Whole contigs, bin 25, ``{"chr1": 110, "chr2": 60}``::

    bin     0        1        2        3        4     | 5        6        7
    chr1  [0,25)  [25,50)  [50,75)  [75,100) [100,110)| chr2 [0,25) [25,50) [50,60)

Regions ``chr1:100-160, chr1:300-350, chr2:40-90``, bin 25::

    bin     0          1          2         | 3          4          | 5        6
    chr1  [100,125) [125,150) [150,160)     | [300,325) [325,350)   | chr2 [40,65) [65,90)
"""

import numpy as np
import pytest

from predictd_core.errors import PredictdInputError
from predictd_core.evaluate.regions import read_bed_mask
from predictd_core.tracks.genome import GenomeBins

WHOLE = GenomeBins.build({"chr1": 110, "chr2": 60}, 25)
REGIONS = GenomeBins.build({"chr1": 1000, "chr2": 500}, 25, [("chr1", 100, 160), ("chr1", 300, 350), ("chr2", 40, 90)])


def _bed(tmp_path, *lines: str):
    path = tmp_path / "annotation.bed"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_whole_contigs_mark_straddled_bins_and_the_short_last_bin(tmp_path):
    path = _bed(tmp_path,
                "track name=genes", "browser position chr1:1-100", "# comment", "",
                "chr1\t24\t26\tname with spaces\t0\t+",  # straddles the 25 edge: bins 0 and 1
                "chr1\t60\t60",  # empty, inside bin 2: no base, no bin
                "chr1\t105\t200",  # runs past the contig end: the short last bin 4 only
                "chr2\t0\t25",  # ends where bin 6 starts: bin 5 only
                "chrUn\t0\t100")  # not in the chrom sizes: ignored
    mask = read_bed_mask(path, WHOLE, "evaluation.genes")
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, [1, 1, 0, 0, 1, 1, 0, 0])


def test_regions_ignore_intervals_outside_the_modelled_spans(tmp_path):
    path = _bed(tmp_path,
                "chr1 0 100",  # ends where the first span starts
                "chr1 155 310",  # the short bin 2 and, across the gap between spans, bin 3
                "chr1 349 2000",  # bin 4, and beyond the contig end
                "chr2 0 41",  # 1 bp into bin 5
                "chr2 90 500",  # starts where the last span ends
                "chr3 0 1000")  # a contig the run does not model
    np.testing.assert_array_equal(read_bed_mask(path, REGIONS, "evaluation.enhancers"), [0, 0, 1, 1, 1, 1, 0])


def test_overlapping_and_nested_intervals_match_a_per_bin_scan(tmp_path):
    spans = [("chr1", 0, 95), ("chr1", 200, 433), ("chr1", 1000, 2000), ("chr2", 7, 300), ("chr2", 1400, 1500)]
    bins = GenomeBins.build({"chr1": 2000, "chr2": 1500}, 10, spans)
    rng = np.random.default_rng(3)
    contigs = rng.choice(["chr1", "chr2", "chrX"], 80)
    starts = rng.integers(0, 2100, 80)
    ends = starts + rng.integers(0, 60, 80)
    path = _bed(tmp_path, *(f"{c}\t{s}\t{e}" for c, s, e in zip(contigs, starts, ends)))
    names = np.array([name for name, _ in bins.contigs])
    contig, bin_start, bin_end = bins.coordinates(0, bins.n_bins)
    expected = [np.any((contigs == names[c]) & (starts < e) & (ends > s))  # >= 1 bp shared
                for c, s, e in zip(contig, bin_start, bin_end)]
    mask = read_bed_mask(path, bins, "evaluation.genes")
    assert 0.1 < mask.mean() < 0.9  # the comparison is not trivially satisfied
    np.testing.assert_array_equal(mask, expected)


def test_a_bed_with_no_intervals_marks_nothing(tmp_path):
    path = _bed(tmp_path, "# nothing here")
    np.testing.assert_array_equal(read_bed_mask(path, WHOLE, "evaluation.genes"), np.zeros(8, dtype=bool))


def test_a_missing_file_names_the_config_field(tmp_path):
    path = tmp_path / "absent.bed"
    with pytest.raises(PredictdInputError, match="file not found") as caught:
        read_bed_mask(path, WHOLE, "evaluation.promoters")
    assert (caught.value.source, caught.value.field) == (str(path), "evaluation.promoters")


@pytest.mark.parametrize("line, message", [
    ("chr1\t10", "expected 'contig start end'"),
    ("chr1\tten\t20", "must be integers"),
    ("chr1\t10\t20.5", "must be integers"),
    ("chr1\t30\t20", "start <= end"),
    ("chr1\t-5\t20", "0 <= start"),
])
def test_a_malformed_line_names_the_file_and_line(tmp_path, line, message):
    path = _bed(tmp_path, "# header", "chr1\t0\t10", line)
    with pytest.raises(PredictdInputError, match=message) as caught:
        read_bed_mask(path, WHOLE, "evaluation.promoters")
    assert (caught.value.source, caught.value.field) == (str(path), "line 3")
