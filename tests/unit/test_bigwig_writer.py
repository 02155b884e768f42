"""predictd's own bigWig writer, read back by pyBigWig (libBigWig) as the independent reference."""

import struct

import numpy as np
import pyBigWig
import pytest

import predictd_core.tracks.bigwig.writer as bigwig_writer
from predictd_core.errors import PredictdInputError
from predictd_core.impute.write_tracks import BigWigWriter
from predictd_core.tracks.bigwig import FixedStepBigWigWriter, zoom_reductions
from predictd_core.tracks.genome import GenomeBins

BIN = 25


def _signal(rng, n):
    """-log10 p-like float32 values: mostly small, a heavy tail."""
    return rng.gamma(0.5, 2.0, n).astype(np.float32)


def _write_contigs(path, contigs, values, chunk):
    """Write every contig's values (one per bin, the last bin short when the length is not a multiple) in
    chunks of ``chunk`` bins; contigs without values get no data."""
    with FixedStepBigWigWriter(path, contigs, BIN) as writer:
        for name, length in contigs:
            if name not in values:
                continue
            full = length // BIN
            for first in range(0, full, chunk):
                writer.add(name, first * BIN, values[name][first:min(first + chunk, full)])
            if full < len(values[name]):
                writer.add_interval(name, full * BIN, length, values[name][-1])


def _widths(length):
    """Bases of each bin of a contig of ``length`` (the last one may be short)."""
    widths = np.full(-(-length // BIN), BIN, np.int64)
    widths[-1] = length - BIN * (len(widths) - 1)
    return widths


@pytest.fixture()
def written(tmp_path):
    """A file with a contig of several thousand bins and a short last bin, a short contig, a contig without
    data and a contig that is one bin narrower than a bin, written in chunks of 3,000 bins."""
    contigs = [("chr1", 250_010), ("chr2", 1_000), ("chrEmpty", 5_000), ("chr3", 77_777), ("chrM", 16)]
    rng = np.random.default_rng(0)
    values = {name: _signal(rng, -(-length // BIN)) for name, length in contigs if name != "chrEmpty"}
    path = tmp_path / "t.bigWig"
    _write_contigs(path, contigs, values, chunk=3_000)
    handle = pyBigWig.open(str(path))
    yield handle, contigs, values
    handle.close()


def test_every_bin_reads_back_exactly_with_its_coordinates(written):
    handle, contigs, values = written
    assert handle.chroms() == dict(contigs)
    for name, length in contigs:
        intervals = handle.intervals(name)
        if name not in values:
            assert intervals is None
            continue
        starts = np.arange(0, length, BIN)
        assert [(s, e) for s, e, _ in intervals] == list(zip(starts.tolist(), np.minimum(starts + BIN, length).tolist()))
        np.testing.assert_array_equal(np.array([v for _, _, v in intervals], np.float32), values[name])


def test_header_summarises_all_the_data(written):
    handle, contigs, values = written
    header = handle.header()
    weights = np.concatenate([_widths(length) for name, length in contigs if name in values])
    flat = np.concatenate([values[name].astype(np.float64) for name, _ in contigs if name in values])
    assert header["version"] == 4
    assert header["nLevels"] == len(zoom_reductions(contigs, BIN))
    assert header["nBasesCovered"] == weights.sum()
    assert header["maxVal"] == int(flat.max())  # pyBigWig hands the header's doubles back as integers
    assert header["sumData"] == int((flat * weights).sum())
    assert header["sumSquared"] == int((flat * flat * weights).sum())


@pytest.mark.parametrize("exact", [False, True])
def test_whole_contig_statistics_match_numpy(written, exact):
    """exact=False reads the zoom levels (the coarsest one finer than half the contig), exact=True the data."""
    handle, contigs, values = written
    for name, length in contigs:
        if name not in values:
            assert handle.stats(name, 0, length, type="mean", exact=exact) == [None]
            continue
        weights, signal = _widths(length), values[name].astype(np.float64)
        expected = {"mean": (signal * weights).sum() / weights.sum(), "max": signal.max(), "min": signal.min(),
                    "coverage": 1.0}
        for kind, value in expected.items():
            assert handle.stats(name, 0, length, type=kind, exact=exact)[0] == pytest.approx(value, rel=1e-5)


def test_zoom_levels_summarise_aligned_windows(tmp_path):
    """Windows that are whole zoom records (1,000 bp records x 4^k) get numpy's statistics of their bins,
    whichever level pyBigWig picks (the one just under half a window); chunks of 777 bins, so records
    straddle the chunks."""
    length = BIN * 40 * 4 ** 3 * 5  # 12,800 bins
    values = {"chrA": _signal(np.random.default_rng(1), length // BIN)}
    path = tmp_path / "z.bigWig"
    _write_contigs(path, [("chrA", length)], values, chunk=777)
    handle = pyBigWig.open(str(path))
    signal = values["chrA"].astype(np.float64)
    for windows in (5, 20, 80, 160, 320):  # 64,000 to 1,000 bases: levels 16,000 down to none (the data)
        per_window = signal.reshape(windows, -1)
        for kind in ("mean", "max", "min"):
            got = np.array(handle.stats("chrA", 0, length, type=kind, nBins=windows), dtype=np.float64)
            np.testing.assert_allclose(got, getattr(per_window, kind)(axis=1), rtol=1e-5)
        np.testing.assert_allclose(handle.stats("chrA", 0, length, type="coverage", nBins=windows), 1.0)
    handle.close()


def test_many_contigs_and_blocks_need_deeper_trees(tmp_path, monkeypatch):
    """Over 256 contigs (a two-level contig tree), over 256 data blocks (a two-level R-tree), and zoom blocks
    moved to the side file while writing: still every value and every contig's statistics."""
    monkeypatch.setattr(bigwig_writer, "ZOOM_BYTES_IN_MEMORY", 2_000)
    contigs = [(f"scaffold{k}", 400 + 37 * k) for k in range(300)] + [("big", BIN * 300_000 + 7)]
    rng = np.random.default_rng(2)
    values = {name: _signal(rng, -(-length // BIN)) for name, length in contigs}
    path = tmp_path / "deep.bigWig"
    _write_contigs(path, contigs, values, chunk=16_384)
    assert [p.name for p in tmp_path.iterdir()] == ["deep.bigWig"]  # the side file is gone
    header = path.read_bytes()[:64]
    chrom_tree, index = struct.unpack_from("<Q", header, 8)[0], struct.unpack_from("<Q", header, 24)[0]
    assert path.read_bytes()[chrom_tree + 32] == 0 and path.read_bytes()[index + 48] == 0  # roots are inner nodes
    handle = pyBigWig.open(str(path))
    assert handle.chroms() == dict(contigs)
    for name, length in contigs[::37] + contigs[-1:]:
        np.testing.assert_array_equal(handle.values(name, 0, length, numpy=True)[::BIN].astype(np.float32),
                                      values[name])
        weights, signal = _widths(length), values[name].astype(np.float64)
        assert handle.stats(name, 0, length)[0] == pytest.approx((signal * weights).sum() / weights.sum(), rel=1e-5)
        assert handle.stats(name, 0, length, type="max")[0] == pytest.approx(signal.max())
    handle.close()


def test_bigwig_writer_chunks_cross_contigs_and_regions(tmp_path):
    """BigWigWriter over regions (runs starting mid-contig, short last bins) with chunks that straddle
    regions and contigs: the file has exactly the bins, and each region's zoom summary is numpy's."""
    chrom_sizes = {"chr1": 100_000, "chr2": 51_010, "chr3": 3_000}
    bins = GenomeBins.build(chrom_sizes, BIN, [("chr1", 110, 40_120), ("chr1", 50_000, 100_000),
                                               ("chr2", 0, 51_010)])
    values = _signal(np.random.default_rng(3), bins.n_bins)
    writer = BigWigWriter(tmp_path / "r.bigWig", bins)
    for lo in range(0, bins.n_bins, 777):
        writer.add(lo, min(lo + 777, bins.n_bins), values[lo:lo + 777])
    writer.close()
    handle = pyBigWig.open(str(tmp_path / "r.bigWig"))
    assert handle.chroms() == chrom_sizes
    intervals = handle.intervals("chr1") + handle.intervals("chr2")
    _, starts, ends = bins.coordinates(0, bins.n_bins)
    assert [(s, e) for s, e, _ in intervals] == list(zip(starts.tolist(), ends.tolist()))
    np.testing.assert_array_equal(np.array([v for _, _, v in intervals], np.float32), values)
    assert handle.intervals("chr3") is None
    for contig, start, end, first, last in bins.runs(0, bins.n_bins):
        signal, weights = values[first:last].astype(np.float64), (ends - starts)[first:last]
        for exact in (False, True):
            assert handle.stats(contig, start, end, exact=exact)[0] == pytest.approx(
                (signal * weights).sum() / weights.sum(), rel=1e-5)
            assert handle.stats(contig, start, end, type="min", exact=exact)[0] == pytest.approx(signal.min())
    handle.close()


def test_a_file_without_data_opens_with_its_contigs(tmp_path):
    FixedStepBigWigWriter(tmp_path / "empty.bigWig", [("chr1", 1_000), ("chr2", 10)], BIN).close()
    handle = pyBigWig.open(str(tmp_path / "empty.bigWig"))
    assert handle.chroms() == {"chr1": 1_000, "chr2": 10}
    assert handle.header()["nLevels"] == 0 and handle.header()["nBasesCovered"] == 0
    assert handle.intervals("chr1") is None
    handle.close()


def test_the_file_appears_only_when_complete(tmp_path):
    path = tmp_path / "t.bigWig"
    writer = FixedStepBigWigWriter(path, [("chr1", 10_000)], BIN)
    writer.add("chr1", 0, np.ones(100, np.float32))
    assert not path.exists()
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["t.bigWig"]
    with pytest.raises(RuntimeError, match="boom"):
        with FixedStepBigWigWriter(tmp_path / "u.bigWig", [("chr1", 10_000)], BIN) as failing:
            failing.add("chr1", 0, np.ones(100, np.float32))
            raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["t.bigWig"]  # no partial files left


def test_bad_values_and_order_are_refused_with_the_file_and_place(tmp_path):
    path = tmp_path / "bad.bigWig"
    writer = FixedStepBigWigWriter(path, [("chr1", 10_000), ("chr2", 10_000)], BIN)
    with pytest.raises(PredictdInputError, match=r"bad\.bigWig: chr1:75: values must be finite, got nan"):
        writer.add("chr1", 0, np.array([1.0, 2.0, 3.0, np.nan], np.float32))
    with pytest.raises(PredictdInputError, match="inf"):
        writer.add("chr1", 0, np.array([np.inf], np.float32))
    writer.add("chr2", 100, np.ones(10, np.float32))
    with pytest.raises(PredictdInputError, match="genome order.*chr2:350"):
        writer.add("chr1", 5_000, np.ones(10, np.float32))
    with pytest.raises(PredictdInputError, match="genome order"):
        writer.add("chr2", 300, np.ones(10, np.float32))  # overlaps the last bins
    with pytest.raises(PredictdInputError, match="chrX"):
        writer.add("chrX", 0, np.ones(10, np.float32))
    with pytest.raises(PredictdInputError, match="outside the contig"):
        writer.add("chr2", 9_990, np.ones(10, np.float32))
    writer.discard()
    assert not list(tmp_path.iterdir())


def test_zoom_levels_start_where_kents_rule_puts_them():
    """Records of 40 bins (32 bytes, doubled, under half of 40 x 4 bytes of data), 4x apart, up to one record
    for the longest contig."""
    assert zoom_reductions([("chr1", 249_250_621)], 25) == [1_000 * 4 ** k for k in range(10)]
    assert zoom_reductions([("a", 5_000), ("b", 14_000)], 25) == [1_000, 4_000, 16_000]
    assert zoom_reductions([("a", 10)], 1) == [40]
