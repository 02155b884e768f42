"""Tracks in and out: binning, the store, bedGraph input and the bigWig round trip."""

import gzip

import numpy as np
import pyBigWig
import pytest

from predictd_core.errors import PredictdInputError
from predictd_core.impute.write_tracks import BigWigWriter, ParallelTrackWriter, to_pvalue_scale
from predictd_core.store.signal_store import SignalStore, ingest
from predictd_core.tracks.genome import GenomeBins, read_chrom_sizes, read_regions
from predictd_core.tracks import readers
from predictd_core.tracks.readers import SignalTrack, read_track_bins
from predictd_core.tracks.table import read_tracks_table
from tests.conftest import write_bigwig


def test_store_holds_arcsinh_bin_means_in_chunks(tiny_compendium, tmp_path):
    folder, tracks_tsv, sizes, truth = tiny_compendium
    store = ingest(read_tracks_table(tracks_tsv), read_chrom_sizes(sizes), 25, tmp_path / "s.zarr", chunk_bins=16)
    assert store.bins.n_bins == 40 + 21 and store.n_chunks == 4
    _, starts, ends = store.bins.coordinates(0, store.bins.n_bins)
    assert ends[-1] - starts[-1] == 10  # chrB is 510 bp: a 10 bp last bin
    column = [e.name for e in store.experiments].index("C2:M1")
    expected = np.arcsinh(np.concatenate([truth["C2:M1"]["chrA"], truth["C2:M1"]["chrB"]]))
    np.testing.assert_allclose(store.read_columns([column])[:, 0], expected, rtol=1e-6)
    reopened = SignalStore.open(tmp_path / "s.zarr")
    assert [e.name for e in reopened.experiments] == [e.name for e in store.experiments]


def test_bin_means_average_covered_bases_and_keep_gaps_missing(tmp_path):
    path = tmp_path / "t.bigWig"
    handle = pyBigWig.open(str(path), "w")
    handle.addHeader([("chr1", 100)], maxZooms=0)
    # bin 0: 10 bases at 2.0 and 15 at 0.0 (an observed zero); bin 1: 5 bases at 4.0; bins 2-3: no data
    handle.addEntries(["chr1", "chr1", "chr1"], [0, 10, 25], ends=[10, 25, 30], values=[2.0, 0.0, 4.0])
    handle.close()
    means = SignalTrack(str(path), {"chr1": 100}, tmp_path / "cache").bin_means("chr1", 0, 100, 25)
    np.testing.assert_allclose(means[:2], [0.8, 4.0])
    assert np.isnan(means[2:]).all()


def test_bedgraph_gives_the_same_store_as_bigwig(tiny_compendium, tmp_path):
    folder, tracks_tsv, sizes, truth = tiny_compendium
    lines = []
    for contig, length in (("chrA", 1000), ("chrB", 510)):
        for i, value in enumerate(truth["C1:M1"][contig]):
            lines.append(f"{contig}\t{i * 25}\t{min(i * 25 + 25, length)}\t{value:.6f}\n")
    with gzip.open(folder / "C1.M1.bedGraph.gz", "wt") as handle:
        handle.writelines(lines)
    table = tracks_tsv.read_text().replace("C1.M1.bigWig", "C1.M1.bedGraph.gz")
    (folder / "bdg.tsv").write_text(table)
    from_bdg = ingest(read_tracks_table(folder / "bdg.tsv"), read_chrom_sizes(sizes), 25, tmp_path / "b.zarr")
    from_bw = ingest(read_tracks_table(tracks_tsv), read_chrom_sizes(sizes), 25, tmp_path / "w.zarr")
    np.testing.assert_allclose(from_bdg.read_columns([0])[:, 0], from_bw.read_columns([0])[:, 0], atol=1e-6)  # 6 decimals in the file


def test_regions_limit_the_bins(tiny_compendium, tmp_path):
    folder, tracks_tsv, sizes, truth = tiny_compendium
    (folder / "r.bed").write_text("chrB\t100\t160\nchrA\t0\t50\nchrA\t40\t75\n")
    chrom_sizes = read_chrom_sizes(sizes)
    regions = read_regions(folder / "r.bed", chrom_sizes)
    assert regions == [("chrA", 0, 75), ("chrB", 100, 160)]
    store = ingest(read_tracks_table(tracks_tsv), chrom_sizes, 25, tmp_path / "r.zarr", regions)
    contigs, starts, ends = store.bins.coordinates(0, store.bins.n_bins)
    assert contigs.tolist() == [0, 0, 0, 1, 1, 1]
    assert starts.tolist() == [0, 25, 50, 100, 125, 150]
    assert ends.tolist() == [25, 50, 75, 125, 150, 160]
    import zarr  # the per-bin coordinate arrays written for other readers agree

    root = zarr.open_group(str(tmp_path / "r.zarr"), mode="r")
    assert root["bin_start"][:].tolist() == starts.tolist() and root["bin_end"][:].tolist() == ends.tolist()


def test_bigwig_round_trip_keeps_contigs_bins_and_values(tmp_path, monkeypatch):
    chrom_sizes = {"chr1": 1000, "chr2": 510, "chr3": 300}
    bins = GenomeBins.build(chrom_sizes, 25, [("chr1", 100, 400), ("chr2", 0, 510)])
    values = np.random.default_rng(0).gamma(1, 2, bins.n_bins)
    writer = BigWigWriter(tmp_path / "out.bigWig", bins)
    writer.add(0, 7, values[:7])  # chunks that split a run
    writer.add(7, bins.n_bins, values[7:])
    writer.close()
    handle = pyBigWig.open(str(tmp_path / "out.bigWig"))
    assert handle.chroms() == chrom_sizes
    intervals = handle.intervals("chr1") + handle.intervals("chr2")
    _, starts, ends = bins.coordinates(0, bins.n_bins)
    assert [(s, e) for s, e, _ in intervals] == list(zip(starts.tolist(), ends.tolist()))
    np.testing.assert_allclose([v for _, _, v in intervals], values, rtol=1e-6)
    assert handle.intervals("chr3") is None
    handle.close()
    whole = read_track_bins(tmp_path / "out.bigWig", bins)
    np.testing.assert_allclose(whole, np.arcsinh(values), rtol=1e-6)
    monkeypatch.setattr(readers, "READ_BINS", 3)  # runs read in pieces, the narrow last bin of chr2 alone
    np.testing.assert_array_equal(read_track_bins(tmp_path / "out.bigWig", bins), whole)
    np.testing.assert_array_equal(read_track_bins(tmp_path / "out.bigWig", bins, 5, 20), whole[5:20])


def test_output_scale_is_sinh_of_clipped_arcsinh():
    np.testing.assert_allclose(to_pvalue_scale(np.array([-1.0, 0.0, np.arcsinh(3.0)])), [0.0, 0.0, 3.0])


def test_chunk_reads_follow_the_genome_not_the_whole_track():
    """Ingest streams by chunk: a chunk spanning two contigs is read as one run per contig."""
    chrom_sizes = {"a": 250, "b": 260}
    bins = GenomeBins.build(chrom_sizes, 25)
    assert bins.n_bins == 10 + 11
    assert bins.runs(5, 15) == [("a", 125, 250, 5, 10), ("b", 0, 125, 10, 15)]
    assert bins.runs(20, 21) == [("b", 250, 260, 20, 21)]  # the short last bin
    assert bins.runs(10, 10) == []


def test_bins_are_held_as_spans_not_per_bin():
    """A whole human genome's bins cost a few rows of memory, and any range's coordinates are exact."""
    hg19_chr1 = 249_250_621
    bins = GenomeBins.build({"chr1": hg19_chr1, "chr2": 243_199_373}, 25)
    assert len(bins.spans) == 2 and bins.n_bins == -(-hg19_chr1 // 25) + -(-243_199_373 // 25)
    lo = -(-hg19_chr1 // 25) - 2
    contigs, starts, ends = bins.coordinates(lo, lo + 4)
    assert contigs.tolist() == [0, 0, 1, 1]
    assert starts.tolist() == [hg19_chr1 - 46, hg19_chr1 - 21, 0, 25]
    assert ends.tolist() == [hg19_chr1 - 21, hg19_chr1, 25, 50]


def _read_all(path, bins):
    handle = pyBigWig.open(str(path))
    try:
        return np.concatenate([handle.values(contig, start, end, numpy=True)[::25]
                               for contig, start, end, _, _ in bins.runs(0, bins.n_bins)])
    finally:
        handle.close()


@pytest.mark.parametrize("processes", [1, 3])
def test_parallel_writer_writes_every_track_as_the_single_writer_does(tmp_path, processes):
    bins = GenomeBins.build({"chr1": 25 * 1000, "chr2": 25 * 700}, 25)
    values = np.random.default_rng(1).gamma(1, 2, (bins.n_bins, 7)).astype(np.float32)
    paths = [tmp_path / f"t{k}.bigWig" for k in range(7)]
    with ParallelTrackWriter(paths, bins, chunk_bins=300, processes=processes) as writer:
        for lo in range(0, bins.n_bins, 300):  # chunks that straddle the contig boundary
            writer.add(lo, min(lo + 300, bins.n_bins), values[lo:lo + 300])
    for column, path in enumerate(paths):
        np.testing.assert_allclose(_read_all(path, bins), values[:, column], rtol=1e-6)


def test_parallel_writer_raises_a_writer_process_error_and_stops(tmp_path):
    bins = GenomeBins.build({"chr1": 25 * 1000}, 25)
    paths = [tmp_path / "ok.bigWig", tmp_path / "missing-folder" / "t.bigWig"]
    with pytest.raises(RuntimeError, match="missing-folder"):
        with ParallelTrackWriter(paths, bins, chunk_bins=500, processes=2) as writer:
            for lo in (0, 500, 0):  # the third chunk waits for the first slot, where the failure is reported
                writer.add(lo, lo + 500, np.ones((500, 2), np.float32))


def test_ingest_in_processes_writes_the_same_store(tiny_compendium, tmp_path):
    _, tracks_tsv, sizes, _ = tiny_compendium
    tracks, chrom_sizes = read_tracks_table(tracks_tsv), read_chrom_sizes(sizes)
    alone = ingest(tracks, chrom_sizes, 25, tmp_path / "one.zarr", chunk_bins=16)
    shared = ingest(tracks, chrom_sizes, 25, tmp_path / "two.zarr", chunk_bins=16, processes=2)
    assert shared.n_chunks == 4 and shared.experiments == alone.experiments and shared.bins == alone.bins
    for chunk in range(4):
        np.testing.assert_array_equal(shared.read_chunk(chunk), alone.read_chunk(chunk))


def test_ingest_in_processes_names_a_bad_file_and_leaves_no_store(tiny_compendium, tmp_path):
    folder, tracks_tsv, sizes, _ = tiny_compendium
    write_bigwig(folder / "C2.M1.bigWig", {"chrA": 1000, "chrB": 510}, {"chrB": -np.ones(21)})  # chunk 3 is bad
    with pytest.raises(PredictdInputError, match="C2.M1.bigWig: values"):
        ingest(read_tracks_table(tracks_tsv), read_chrom_sizes(sizes), 25, tmp_path / "s.zarr", chunk_bins=16,
               processes=2)
    assert not [path for path in tmp_path.rglob("*") if "s.zarr" in path.name]  # nor its partial folder
