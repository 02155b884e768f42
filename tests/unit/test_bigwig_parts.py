"""bigWig parts assembled by copying: the same file, to a reader, as the one-pass writer's.

References: pyBigWig (libBigWig) for values, intervals and statistics; and this file's own reader of the zoom
levels (header, R-trees, zlib blocks of 32-byte records, parsed with struct and zlib only) for the records of
every level, compared between the assembled file and the one-pass writer's.
"""

import io
import struct
import zlib

import numpy as np
import pyBigWig
import pytest

from predictd_core.errors import PredictdInputError
from predictd_core.impute.write_tracks import BigWigWriter, assemble_track, run_origin, write_track_part
from predictd_core.tracks.bigwig import Assembly, BigWigPart, FixedStepBigWigWriter, assemble
from predictd_core.tracks.genome import GenomeBins
from tests.bigwig_layout import rtree_leaves

BIN = 25
# Longest contig 325,007 bp: zoom levels of 1,000 to 1,024,000 bp (40 to 40,960 bins); the top levels' records
# span many parts. Three contigs end in a narrow bin; chrEmpty gets no data.
CONTIGS = [("chrA", BIN * 13_000 + 7), ("chrB", BIN * 3_000), ("chrEmpty", 5_000), ("chrC", BIN * 40 + 3),
           ("chrD", BIN * 9_000 + 11)]
# Cuts in the genome's bins (chrA 0-13,001, chrB -16,001, chrC -16,042, chrD -25,043): single-bin parts (the
# first bin; mid-window at 5,000; chrA's narrow last bin alone), cuts mid-window and mid-contig, a part of
# ~5,000 bins beside ones of 1, a part holding the end of chrB, chrC with its narrow last bin and the start of
# chrD, and a last part ending with chrD's narrow bin.
CUTS = [0, 1, 17, 5_000, 5_001, 12_345, 13_000, 13_001, 14_500, 16_500, 24_000, 25_043]
RECORD = struct.Struct("<IIIIffff")


def _signal(rng, n):
    """-log10 p-like float32 values: mostly small, a heavy tail, some zeros."""
    values = rng.gamma(0.5, 2.0, n).astype(np.float32)
    values[rng.random(n) < 0.2] = 0
    return values


def _genome_bins():
    """(contig, first genome bin, bins) of every contig with data, and every bin's value."""
    layout, first = [], 0
    for name, length in CONTIGS:
        if name != "chrEmpty":
            layout.append((name, first, -(-length // BIN)))
            first += layout[-1][2]
    return layout, _signal(np.random.default_rng(7), first)


def _pieces(lo, hi):
    """Genome bins [lo, hi) as writer calls: ("add", contig, start, values) per run of full bins, split in two
    where long (pieces continue each other's records), ("interval", contig, start, end, value) for a narrow
    last bin; and the part's run origin (0 when it starts mid-contig)."""
    layout, values = _genome_bins()
    lengths = dict(CONTIGS)
    calls, origin = [], None
    for name, first, count in layout:
        a, b = max(lo, first) - first, min(hi, first + count) - first
        if a >= b:
            continue
        if not calls and a > 0:
            origin = 0
        full = min(b, lengths[name] // BIN)
        middle = a + (full - a) * 2 // 3
        for start, end in ((a, middle), (middle, full)):
            if start < end:
                calls.append(("add", name, start * BIN, values[first + start:first + end]))
        if b > full:
            calls.append(("interval", name, full * BIN, lengths[name], values[first + b - 1]))
    return calls, origin


def _feed(writer, calls):
    for call in calls:
        if call[0] == "add":
            writer.add(*call[1:])
        else:
            writer.add_interval(*call[1:])


def _write_parts(directory, cuts=CUTS):
    """The parts of ``cuts`` written through BigWigPart; returns their paths."""
    paths = []
    for k, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:])):
        calls, origin = _pieces(lo, hi)
        paths.append(directory / f"part{k:03d}")
        with BigWigPart(paths[-1], CONTIGS, BIN, run_origin=origin) as part:
            _feed(part, calls)
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(one-pass file, assembled file, parts' directory)."""
    directory = tmp_path_factory.mktemp("parts")
    one_pass = directory / "one.bigWig"
    with FixedStepBigWigWriter(one_pass, CONTIGS, BIN) as writer:
        _feed(writer, _pieces(0, CUTS[-1])[0])
    assembled = directory / "assembled.bigWig"
    assemble(_write_parts(directory), assembled, CONTIGS, BIN)
    return one_pass, assembled, directory


def zoom_levels(path):
    """{reduction: records as an array of rows (chrom, start, end, valid, min, max, sum, squares)} of a file,
    read through its zoom headers and R-trees; each block's leaf bounds checked against its records."""
    data = path.read_bytes()
    n_levels = struct.unpack_from("<H", data, 6)[0]
    levels = {}
    for level in range(n_levels):
        reduction, _, data_offset, index_offset = struct.unpack_from("<IIQQ", data, 64 + 24 * level)
        leaves = rtree_leaves(data, index_offset)
        assert struct.unpack_from("<I", data, data_offset)[0] == len(leaves)
        rows = []
        for offset, size, (start_chrom, start, end_chrom, end) in leaves:
            block = zlib.decompress(data[offset:offset + size])
            records = [RECORD.unpack_from(block, k) for k in range(0, len(block), RECORD.size)]
            assert (start_chrom, start, end_chrom, end) == (*records[0][:2], records[-1][0], records[-1][2])
            rows += records
        levels[reduction] = np.array(rows, dtype=np.float64)
    return levels


def total_summary(path):
    """(bases, min, max, sum, sum of squares) from the header's total summary."""
    data = path.read_bytes()
    offset = struct.unpack_from("<Q", data, 44)[0]
    return struct.unpack_from("<Qdddd", data, offset)


def assert_same_zoom_levels(expected_path, got_path):
    expected, got = zoom_levels(expected_path), zoom_levels(got_path)
    assert list(got) == list(expected) and len(expected) >= 5
    for reduction, rows in expected.items():
        np.testing.assert_array_equal(got[reduction][:, :6], rows[:, :6], err_msg=f"zoom level {reduction}")
        np.testing.assert_allclose(got[reduction][:, 6:], rows[:, 6:], rtol=2 ** -22, atol=1e-30)


def test_assembled_file_reads_as_the_one_pass_file(files):
    one_pass, assembled, _ = files
    _, values = _genome_bins()
    with pyBigWig.open(str(one_pass)) as expected, pyBigWig.open(str(assembled)) as got:
        assert got.chroms() == expected.chroms() == dict(CONTIGS)
        intervals = []
        for name, length in CONTIGS:
            assert got.intervals(name) == expected.intervals(name)
            intervals += got.intervals(name) or []
        np.testing.assert_array_equal(np.array([v for _, _, v in intervals], np.float32), values)  # every bin
        header, reference = got.header(), expected.header()
        for key in ("version", "nLevels", "nBasesCovered", "minVal", "maxVal"):
            assert header[key] == reference[key]
        for name, length in CONTIGS[:2] + CONTIGS[3:]:
            windows = [(0, length), (BIN * 17, length - 333), (4_999 * BIN, 5_002 * BIN), (12_990 * BIN, length)]
            for start, end in [(start, end) for start, end in windows if start < end <= length]:
                for kind in ("mean", "min", "max", "std"):
                    pieces = 7 if end - start > 10_000 else 1
                    assert got.stats(name, start, end, type=kind, nBins=pieces, exact=False) == pytest.approx(
                        expected.stats(name, start, end, type=kind, nBins=pieces, exact=False), rel=1e-6)
    bases, low, high, total, squares = total_summary(assembled)
    assert (bases, low, high) == total_summary(one_pass)[:3]
    assert (total, squares) == pytest.approx(total_summary(one_pass)[3:], rel=1e-12)


def test_every_zoom_record_is_the_one_pass_writers(files):
    one_pass, assembled, _ = files
    assert_same_zoom_levels(one_pass, assembled)


def test_a_single_part_and_hundreds_of_small_ones(tmp_path, files):
    """The whole genome in one part; then one-bin parts at the start and parts of 79 bins to chrA's end (each
    with a complete level-0 record and cut ones): over 256 data blocks and level-0 zoom blocks (R-trees of two
    levels), the same values and records again."""
    one_pass = files[0]
    assemble(_write_parts(tmp_path, [0, CUTS[-1]]), tmp_path / "one.bigWig", CONTIGS, BIN)
    assert_same_zoom_levels(one_pass, tmp_path / "one.bigWig")
    cuts = list(range(0, 120)) + list(range(120, 13_000, 79)) + [13_000, 13_001, 13_002, CUTS[-1]]
    assemble(_write_parts(tmp_path, cuts), tmp_path / "many.bigWig", CONTIGS, BIN)
    assert_same_zoom_levels(one_pass, tmp_path / "many.bigWig")
    data = (tmp_path / "many.bigWig").read_bytes()
    index, first_zoom_index = struct.unpack_from("<Q", data, 24)[0], struct.unpack_from("<Q", data, 64 + 16)[0]
    assert data[index + 48] == 0 and data[first_zoom_index + 48] == 0  # the roots are inner nodes
    with pyBigWig.open(str(one_pass)) as expected, pyBigWig.open(str(tmp_path / "many.bigWig")) as got:
        assert all(got.intervals(name) == expected.intervals(name) for name, _ in CONTIGS)


def test_a_part_without_data_is_skipped(tmp_path, files):
    paths = _write_parts(tmp_path, [0, 5_000, CUTS[-1]])
    BigWigPart(tmp_path / "empty", CONTIGS, BIN).close()
    assemble([paths[0], tmp_path / "empty", paths[1]], tmp_path / "t.bigWig", CONTIGS, BIN)
    assert_same_zoom_levels(files[0], tmp_path / "t.bigWig")


def _assert_fails_cleanly(tmp_path, paths, match):
    """Assembly raises a one-line error matching ``match`` and leaves nothing at its path (nor partial files)."""
    before = set(tmp_path.iterdir())
    with pytest.raises(PredictdInputError, match=match) as raised:
        assemble(paths, tmp_path / "out.bigWig", CONTIGS, BIN)
    assert "\n" not in str(raised.value)
    assert set(tmp_path.iterdir()) == before


def test_missing_damaged_foreign_and_misordered_parts_are_named(tmp_path):
    paths = _write_parts(tmp_path, [0, 5_000, 13_001, CUTS[-1]])
    _assert_fails_cleanly(tmp_path, [paths[0], tmp_path / "nowhere", paths[2]], r"nowhere: part: not found")
    _assert_fails_cleanly(tmp_path, [paths[1], paths[0], paths[2]], r"part001: run: .*missing or out of order")
    _assert_fails_cleanly(tmp_path, [paths[0], paths[2], paths[1]], r"part001: order: starts at chrA:125000")
    _assert_fails_cleanly(tmp_path, [paths[1], paths[2]], r"part001: run: .*missing")  # its run's start is

    data = bytearray(paths[1].read_bytes())
    damaged = tmp_path / "damaged"
    damaged.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])  # a byte of a data block
    _assert_fails_cleanly(tmp_path, [paths[0], damaged, paths[2]], r"damaged: blocks: checksum mismatch")
    damaged.write_bytes(data[:-10])
    _assert_fails_cleanly(tmp_path, [paths[0], damaged, paths[2]], r"damaged: index: .*not a complete bigWig part")
    damaged.write_bytes(b"")
    _assert_fails_cleanly(tmp_path, [paths[0], damaged, paths[2]], r"damaged: header: no part header")

    with BigWigPart(tmp_path / "foreign", CONTIGS[:2], BIN) as foreign:
        foreign.add("chrA", 0, np.ones(10, np.float32))
    _assert_fails_cleanly(tmp_path, [tmp_path / "foreign"], r"foreign: header: written for other contigs")


def test_a_part_refuses_a_first_bin_off_its_runs_grid_and_disappears_on_error(tmp_path):
    with pytest.raises(PredictdInputError, match=r"p: chrA:130: .*not a whole number of 25 bp bins"):
        with BigWigPart(tmp_path / "p", CONTIGS, BIN, run_origin=0) as part:
            part.add("chrA", 130, np.ones(4, np.float32))
    with pytest.raises(PredictdInputError, match="values must be finite"):
        with BigWigPart(tmp_path / "p", CONTIGS, BIN) as part:
            part.add("chrA", 0, np.array([1, np.nan], np.float32))
    assert not list(tmp_path.iterdir())


def test_run_origin_follows_spans_runs():
    """Adjacent full-binned regions make one run; a narrow last bin or a gap ends it."""
    bins = GenomeBins.build({"c1": 10_000, "c2": 5_000}, BIN,
                            [("c1", 100, 1_100), ("c1", 1_100, 2_110), ("c1", 2_110, 3_000), ("c1", 4_000, 5_000),
                             ("c2", 0, 5_000)])
    # spans' first bins: 0 (c1:100), 40 (c1:1,100), 81 (c1:2,110, after a narrow bin), 117 (c1:4,000), 157 (c2)
    assert run_origin(bins, 0) is None and run_origin(bins, 39) == 100
    assert run_origin(bins, 40) == 100 and run_origin(bins, 80) == 100  # the second span continues the first
    assert run_origin(bins, 81) is None and run_origin(bins, 82) == 2_110
    assert run_origin(bins, 117) is None and run_origin(bins, 157) is None and run_origin(bins, 158) == 0
    assert run_origin(bins, bins.n_bins) is None


def test_track_parts_assemble_to_bigwig_writers_file(tmp_path):
    """write_track_part per chunk of 1,111 bins (not a multiple of any zoom window) and assemble_track give
    BigWigWriter's file: several contigs, regions (adjacent ones continue a run), narrow last bins."""
    chrom_sizes = {"chr1": 160_010, "chr2": 51_010, "chr3": 3_000, "chr4": 90_000}
    # chr1's first two regions make one run (the first has no narrow bin), the third starts after a narrow bin
    bins = GenomeBins.build(chrom_sizes, BIN, [("chr1", 110, 40_110), ("chr1", 40_110, 100_013),
                                               ("chr1", 100_013, 160_010), ("chr2", 0, 51_010),
                                               ("chr4", 0, 90_000)])
    values = np.random.default_rng(3).normal(0.5, 1.0, bins.n_bins).astype(np.float32)  # arcsinh scale
    chunk = 1_111
    writer = BigWigWriter(tmp_path / "one.bigWig", bins, from_arcsinh=True)
    parts = []
    for lo in range(0, bins.n_bins, chunk):
        hi = min(lo + chunk, bins.n_bins)
        writer.add(lo, hi, values[lo:hi])
        parts.append(tmp_path / f"part{lo}")
        write_track_part(parts[-1], bins, lo, hi, values[lo:hi], from_arcsinh=True)
    writer.close()
    assemble_track(parts, tmp_path / "assembled.bigWig", bins)
    with pyBigWig.open(str(tmp_path / "one.bigWig")) as expected, \
            pyBigWig.open(str(tmp_path / "assembled.bigWig")) as got:
        intervals = []
        for name in chrom_sizes:
            assert got.intervals(name) == expected.intervals(name)
            intervals += got.intervals(name) or []
    _, starts, ends = bins.coordinates(0, bins.n_bins)
    assert [(start, end) for start, end, _ in intervals] == list(zip(starts.tolist(), ends.tolist()))
    np.testing.assert_array_equal(np.array([v for _, _, v in intervals], np.float32),
                                  np.sinh(np.maximum(values, 0)))
    assert_same_zoom_levels(tmp_path / "one.bigWig", tmp_path / "assembled.bigWig")


def test_parts_written_into_one_file_assemble_from_their_bytes_or_open_files(tmp_path, files):
    """Parts one after another in one open file (a chunk's bundle), read back as bytes, memoryviews or open files
    positioned at their first byte, assemble to the file made of part files; a part discarded mid-way leaves
    nothing in the shared file."""
    one_pass, assembled, directory = files
    bounds = [0]
    with open(tmp_path / "bundle", "w+b") as bundle:
        for k, (lo, hi) in enumerate(zip(CUTS[:-1], CUTS[1:])):
            calls, origin = _pieces(lo, hi)
            with BigWigPart(bundle, CONTIGS, BIN, run_origin=origin) as part:
                _feed(part, calls)
            if k == 3:  # a part that fails after writing blocks: cut back, the next one starts where it began
                with pytest.raises(PredictdInputError, match="values must be finite"):
                    before = bundle.tell()
                    with BigWigPart(bundle, CONTIGS, BIN) as broken:
                        broken.add("chrA", 0, _signal(np.random.default_rng(1), 10_000))
                        assert bundle.tell() > before + 4_096  # its first blocks are in the file
                        broken.add("chrA", 250_000, np.array([np.nan], np.float32))
            bounds.append(bundle.tell())
        assert bundle.seek(0, 2) == bounds[-1]
        data = (tmp_path / "bundle").read_bytes()
        # each part's bytes are those of the same part written to its own file
        for k, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
            assert data[start:end] == (directory / f"part{k:03d}").read_bytes()
        view = memoryview(data)
        sources = [view[start:end] if k % 2 else data[start:end]
                   for k, (start, end) in enumerate(zip(bounds[:-1], bounds[1:]))]
        assemble(sources, tmp_path / "from_bytes.bigWig", CONTIGS, BIN)
        assert (tmp_path / "from_bytes.bigWig").read_bytes() == assembled.read_bytes()
        last = len(bounds) - 2  # the last part runs to the file's end: read from the open file
        bundle.seek(bounds[last])
        with Assembly(tmp_path / "from_file.bigWig", CONTIGS, BIN) as assembly:
            for k in range(last):
                assembly.add(io.BytesIO(data[bounds[k]:bounds[k + 1]]), name=f"bundle[{k}]")
            assembly.add(bundle)
        assert (tmp_path / "from_file.bigWig").read_bytes() == assembled.read_bytes()
    with pytest.raises(PredictdInputError, match=r"bundle\[1\]: blocks: checksum mismatch"):
        damaged = bytearray(data[bounds[1]:bounds[2]])
        damaged[100] ^= 1
        with Assembly(tmp_path / "damaged.bigWig", CONTIGS, BIN) as assembly:
            assembly.add(data[:bounds[1]], name="bundle[0]")
            assembly.add(bytes(damaged), name="bundle[1]")
    assert not (tmp_path / "damaged.bigWig").exists() and not list(tmp_path.glob("*.partial"))
