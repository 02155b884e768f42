"""Simulated compendia: the files, the planted truth, the grid layouts and the atomic write."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pyBigWig
import pytest
import yaml

from typer.testing import CliRunner

from predictd_core.cli.main import app
from predictd_core.config import load_config
from predictd_core.errors import PredictdInputError
from predictd_core.simulate import load_truth, simulate_compendium, write_example_config
from predictd_core.store.signal_store import SignalStore
from predictd_core.tracks.genome import read_chrom_sizes
from predictd_core.tracks.readers import SignalTrack
from predictd_core.tracks.table import read_tracks_table

ROADMAP_LAYOUT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "roadmap-layout"


def _truth(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _bigwig_bins(path: str, contigs: list[tuple[str, int]], bin_size: int) -> np.ndarray:
    """Every bin's value of a fixed-step bigWig, contigs concatenated."""
    handle = pyBigWig.open(path)
    try:
        parts = [np.asarray(handle.values(name, 0, length, numpy=True))[::bin_size] for name, length in contigs]
    finally:
        handle.close()
    return np.concatenate(parts)


def test_files_are_readable_and_match_the_truth(tmp_path):
    out = simulate_compendium(tmp_path / "comp", n_cells=3, n_assays=4, n_bins=3001, rank=3, contigs=3,
                              noise=0.3, seed=7)
    assert {p.name for p in out.root.iterdir()} == (
        {"tracks.tsv", "chrom.sizes", "truth.npz"} | {f"{c}.{a}.bigWig" for c, a in out.observed})
    assert out.cells == ("E001", "E002", "E003")
    assert out.assays == ("H3K4me3", "H3K27me3", "H3K36me3", "H3K9me3")

    sizes = read_chrom_sizes(out.chrom_sizes)
    assert list(sizes) == ["chrS1", "chrS2", "chrS3"]
    assert list(sizes.values()) == [1001 * 25, 1000 * 25, 1000 * 25]
    tracks = read_tracks_table(out.tracks_tsv)
    assert [(t.cell_type, t.assay) for t in tracks] == [(c, a) for c in out.cells for a in out.assays]

    truth = _truth(out.truth)
    assert truth["signal"].shape == truth["observed"].shape == (3, 4, 3001)
    assert truth["G"].shape == (3001, 3) and truth["C"].shape == (3, 3) and truth["A"].shape == (4, 3)
    assert list(truth["cells"]) == list(out.cells) and list(truth["assays"]) == list(out.assays)
    # the stored signal is the planted model, noiseless
    clean = (truth["mu"] + truth["b_cell"][:, None, None] + truth["b_assay"][None, :, None]
             + truth["b_bin"][None, None, :] + np.einsum("ck,ak,ik->cai", truth["C"], truth["A"], truth["G"]))
    np.testing.assert_allclose(truth["signal"], np.maximum(clean, 0), atol=1e-4)
    # observed = clip(clean + noise): the residual where clipping cannot bite has the planted sd
    residual = (truth["observed"] - truth["signal"])[truth["signal"] > 1.5]
    assert residual.size > 500
    assert abs(residual.mean()) < 0.05 and 0.25 < residual.std() < 0.35

    contigs = list(sizes.items())
    for track in tracks:
        c, a = out.cells.index(track.cell_type), out.assays.index(track.assay)
        handle = pyBigWig.open(track.path)
        assert handle.chroms() == sizes
        first = handle.intervals("chrS2", 0, 100)
        assert [(s, e) for s, e, _ in first] == [(0, 25), (25, 50), (50, 75), (75, 100)]
        handle.close()
        values = _bigwig_bins(track.path, contigs, 25)
        assert values.shape == (3001,) and np.all(values >= 0)
        np.testing.assert_allclose(np.arcsinh(values), truth["observed"][c, a], rtol=1e-5, atol=1e-5)

    # the project's own reader sees the same per-bin values
    reader = SignalTrack(tracks[5].path, sizes, tmp_path / "cache")
    bins = reader.bin_means("chrS3", 0, sizes["chrS3"], 25)
    reader.close()
    c, a = out.cells.index(tracks[5].cell_type), out.assays.index(tracks[5].assay)
    np.testing.assert_allclose(bins, np.sinh(truth["observed"][c, a, 2001:]), rtol=1e-5, atol=1e-6)


def test_signal_looks_like_chip(tmp_path):
    out = simulate_compendium(tmp_path / "comp", n_cells=4, n_assays=5, n_bins=20000, rank=5, seed=1)
    signal = _truth(out.truth)["signal"]

    def autocorr(x, lag):
        return np.corrcoef(x[:-lag], x[lag:])[0, 1]

    k4me3, k27me3, k36me3 = (signal[0, out.assays.index(m)] for m in ("H3K4me3", "H3K27me3", "H3K36me3"))
    # promoter mark: sharp peaks (smooth over a bin or two, unrelated 40 bins away), strongly skewed
    assert autocorr(k4me3, 1) > 0.8 and abs(autocorr(k4me3, 40)) < 0.2
    assert np.quantile(k4me3, 0.99) > 4 * np.median(k4me3)
    # broad marks: domains hundreds of bins long
    assert autocorr(k27me3, 40) > 0.5 and autocorr(k36me3, 40) > 0.3
    for track in signal.reshape(-1, signal.shape[-1]):
        centred = track - track.mean()
        assert (centred ** 3).mean() > 0  # positive skew
    assert signal.max() < 10


def test_deterministic_by_seed(tmp_path):
    kwargs = dict(n_cells=4, n_assays=4, n_bins=2000, rank=6, missing_fraction=0.25)
    a = simulate_compendium(tmp_path / "a", seed=3, **kwargs)
    b = simulate_compendium(tmp_path / "b", seed=3, **kwargs)
    c = simulate_compendium(tmp_path / "c", seed=4, **kwargs)
    ta, tb, tc = _truth(a.truth), _truth(b.truth), _truth(c.truth)
    assert ta.keys() == tb.keys()
    for key in ta:
        np.testing.assert_array_equal(ta[key], tb[key], err_msg=key)
    assert a.observed == b.observed
    assert a.tracks_tsv.read_text() == b.tracks_tsv.read_text()
    for cell, assay in a.observed:
        name = f"{cell}.{assay}.bigWig"
        assert (a.root / name).read_bytes() == (b.root / name).read_bytes()
    assert not np.array_equal(ta["signal"], tc["signal"])


def test_truth_does_not_depend_on_missing_fraction(tmp_path):
    full = _truth(simulate_compendium(tmp_path / "full", n_cells=4, n_assays=4, n_bins=1500, seed=9).truth)
    holes = _truth(simulate_compendium(tmp_path / "holes", n_cells=4, n_assays=4, n_bins=1500, seed=9,
                                       missing_fraction=0.4).truth)
    np.testing.assert_array_equal(full["signal"], holes["signal"])
    kept = holes["observed_mask"]
    np.testing.assert_array_equal(full["observed"][kept], holes["observed"][kept])


@pytest.mark.parametrize("n_cells, n_assays, fraction", [(5, 4, 0.4), (8, 6, 0.5), (3, 3, 1 / 3)])
def test_missing_fraction_keeps_two_per_cell_and_assay(tmp_path, n_cells, n_assays, fraction):
    out = simulate_compendium(tmp_path / "comp", n_cells=n_cells, n_assays=n_assays, n_bins=500,
                              missing_fraction=fraction, seed=2)
    truth = _truth(out.truth)
    mask = truth["observed_mask"]
    assert mask.shape == (n_cells, n_assays)
    assert (~mask).sum() == round(fraction * n_cells * n_assays)
    assert mask.sum(axis=1).min() >= 2 and mask.sum(axis=0).min() >= 2
    listed = {(t.cell_type, t.assay) for t in read_tracks_table(out.tracks_tsv)}
    expected = {(c, a) for i, c in enumerate(out.cells) for j, a in enumerate(out.assays) if mask[i, j]}
    assert listed == expected == set(out.observed)
    assert set(out.missing) == {(c, a) for c in out.cells for a in out.assays} - expected
    for cell, assay in out.missing:
        assert not (out.root / f"{cell}.{assay}.bigWig").exists()
    assert np.all(np.isnan(truth["observed"][~mask])) and not np.any(np.isnan(truth["observed"][mask]))
    assert np.all(np.isfinite(truth["signal"]))


def test_impossible_missing_fraction_is_refused(tmp_path):
    with pytest.raises(PredictdInputError, match="keeps 2"):
        simulate_compendium(tmp_path / "comp", n_cells=3, n_assays=3, n_bins=200, missing_fraction=0.5)
    assert not (tmp_path / "comp").exists()
    assert list(tmp_path.iterdir()) == []


needs_layout = pytest.mark.skipif(not (ROADMAP_LAYOUT / "predictd_splits.json").is_file(),
                                  reason="the shared Roadmap layout folder is not present")


@needs_layout
def test_roadmap_layout_subgrid_matches_the_split_file(tmp_path):
    splits = json.loads((ROADMAP_LAYOUT / "predictd_splits.json").read_text())
    idmap = json.loads((ROADMAP_LAYOUT / "idmap.json").read_text())
    names = [name for part in splits.values() for name in part]
    assert len(names) == 1014
    real = {tuple(name.split("-", 1)) for name in names}
    cells = sorted(idmap["cell2id"], key=idmap["cell2id"].get)[:12]
    counts = Counter(assay for _, assay in real)
    assays = sorted(idmap["assay2id"], key=lambda a: (-counts[a], idmap["assay2id"][a]))[:9]

    out = simulate_compendium(tmp_path / "comp", n_cells=12, n_assays=9, n_bins=400, layout=ROADMAP_LAYOUT)
    assert out.cells == tuple(cells) and out.assays == tuple(assays)
    assert out.assays[:5] == ("H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3")
    expected = {(c, a) for c in cells for a in assays if (c, a) in real}
    assert set(out.observed) == expected
    assert 0 < len(expected) < 12 * 9  # real holes are kept
    listed = read_tracks_table(out.tracks_tsv)
    assert {(t.cell_type, t.assay) for t in listed} == expected
    mask = _truth(out.truth)["observed_mask"]
    assert {(cells[i], assays[j]) for i, j in zip(*np.nonzero(mask))} == expected
    split_of = {tuple(name.split("-", 1)): part for part, group in splits.items() for name in group}
    for line in out.tracks_tsv.read_text().splitlines()[1:]:
        cell, assay, _, description = line.split("\t")
        assert description.endswith(f"Roadmap split {split_of[(cell, assay)]}")


def test_roadmap_layout_absent_is_a_clear_error(tmp_path):
    with pytest.raises(PredictdInputError, match="predictd_splits.json") as info:
        simulate_compendium(tmp_path / "comp", n_bins=100, layout=tmp_path / "no-such-layout")
    assert info.value.field == "layout" and "no-such-layout" in str(info.value)
    assert not (tmp_path / "comp").exists()


def test_roadmap_layout_rejects_missing_fraction_and_unknown_layouts(tmp_path):
    with pytest.raises(PredictdInputError, match="missing_fraction"):
        simulate_compendium(tmp_path / "a", n_bins=100, layout=ROADMAP_LAYOUT, missing_fraction=0.2)
    with pytest.raises(PredictdInputError, match="layout"):
        simulate_compendium(tmp_path / "b", n_bins=100, layout="encode")


def test_existing_compendium_is_refused_without_overwrite(tmp_path):
    target = tmp_path / "comp"
    first = simulate_compendium(target, n_cells=2, n_assays=2, n_bins=300, seed=1)
    before = _truth(first.truth)["signal"]
    with pytest.raises(PredictdInputError, match="overwrite") as info:
        simulate_compendium(target, n_cells=2, n_assays=2, n_bins=300, seed=2)
    assert info.value.field == "out_dir"
    np.testing.assert_array_equal(_truth(first.truth)["signal"], before)  # untouched

    second = simulate_compendium(target, n_cells=3, n_assays=2, n_bins=300, seed=2, overwrite=True)
    after = _truth(second.truth)
    assert after["signal"].shape == (3, 2, 300)
    assert (target / "E003.H3K4me3.bigWig").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comp"]  # no temporary folders left


def test_foreign_folders_are_never_replaced_but_empty_ones_are_used(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(PredictdInputError, match="not empty"):
        simulate_compendium(foreign, n_bins=100, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"

    empty = tmp_path / "empty"
    empty.mkdir()
    out = simulate_compendium(empty, n_cells=2, n_assays=2, n_bins=100)
    assert out.tracks_tsv.is_file()


def test_bad_arguments_are_refused(tmp_path):
    for kwargs in (dict(n_assays=25), dict(rank=0), dict(missing_fraction=1.0), dict(noise=-1.0),
                   dict(n_bins=1, contigs=2)):
        with pytest.raises(PredictdInputError):
            simulate_compendium(tmp_path / "comp", **{"n_bins": 100, **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_write_example_config(tmp_path):
    out = simulate_compendium(tmp_path / "comp", n_cells=3, n_assays=3, n_bins=200, bin_size=50)
    path = write_example_config(out.root, ["E002:H3K27me3", "E003:H3K4me3"])
    assert path == out.root / "run.yaml"
    config = yaml.safe_load(path.read_text())
    assert config == {
        "tracks": "tracks.tsv", "chrom_sizes": "chrom.sizes", "bin_size": 50,
        "holdout": ["E002:H3K27me3", "E003:H3K4me3"], "model": {"solver": "als"},
        "cv": {"n_test": 5, "n_valid": 2}, "engine": {"master": "local[*]"}, "output": "output",
    }
    assert (path.parent / config["tracks"]).is_file() and (path.parent / config["chrom_sizes"]).is_file()
    with pytest.raises(PredictdInputError, match="CELL:ASSAY"):
        write_example_config(out.root, ["E002-H3K27me3"])
    with pytest.raises(PredictdInputError, match="not an observed experiment"):
        write_example_config(out.root, ["E009:H3K4me3"])


@pytest.mark.parametrize("n_bins, rank", [(2, 1), (7, 7), (60, 11)])
def test_tiny_genomes_and_any_rank(tmp_path, n_bins, rank):
    out = simulate_compendium(tmp_path / "comp", n_cells=2, n_assays=3, n_bins=n_bins, rank=rank, seed=rank)
    truth = _truth(out.truth)
    assert truth["G"].shape == (n_bins, rank) and np.all(truth["G"] >= 0)
    assert np.all(np.isfinite(truth["signal"])) and np.all(truth["signal"] >= 0)
    assert sum(read_chrom_sizes(out.chrom_sizes).values()) == n_bins * 25


# --------------------------------------------------------------------------- streaming: blocks, store, CLI

def _store_signal(path: Path) -> np.ndarray:
    store = SignalStore.open(path)
    return np.concatenate([store.read_chunk(k) for k in range(store.n_chunks)])


def test_streamed_tracks_and_store_equal_the_in_memory_generation(tmp_path):
    """Blocks of 1,000 bins over 3 contigs of 1,667 bins; store chunks of 700 straddle both kinds of edge."""
    kwargs = dict(n_cells=3, n_assays=4, n_bins=5001, rank=6, missing_fraction=0.25, contigs=3, seed=5,
                  block_bins=1000)
    dense = simulate_compendium(tmp_path / "dense", **kwargs)
    streamed = simulate_compendium(tmp_path / "bw", dense_truth=False, **kwargs)
    stored = simulate_compendium(tmp_path / "store", dense_truth=False, signal_format="store", chunk_bins=700,
                                 **kwargs)
    truth = _truth(dense.truth)
    mask = truth["observed_mask"]
    expected = truth["observed"][mask]  # (n_observed, n_bins), grid order
    assert streamed.observed == stored.observed == dense.observed and len(dense.observed) == mask.sum() == 9

    contigs = list(read_chrom_sizes(streamed.chrom_sizes).items())
    for row, (cell, assay) in enumerate(streamed.observed):
        values = _bigwig_bins(str(streamed.root / f"{cell}.{assay}.bigWig"), contigs, 25)
        np.testing.assert_array_equal(np.arcsinh(values), np.arcsinh(np.sinh(expected[row])))
    assert stored.store == stored.root / "store.zarr"
    assert not any(stored.root.glob("*.bigWig"))
    store = SignalStore.open(stored.store)
    assert [(e.cell_type, e.assay) for e in store.experiments] == list(stored.observed)
    np.testing.assert_allclose(_store_signal(stored.store), expected.T, rtol=1e-6, atol=1e-6)

    # the compact truth has no per-bin arrays, and regenerates them block by block
    compact = _truth(streamed.truth)
    assert "signal" not in compact and "G" not in compact
    planted = load_truth(streamed.truth)
    assert (planted.n_bins, planted.block_bins, planted.n_blocks) == (5001, 1000, 6)
    np.testing.assert_array_equal(planted.C, truth["C"])
    for block in range(planted.n_blocks):
        lo, hi = planted.block_range(block)
        G, b_bin = planted.genome_block(block)
        np.testing.assert_array_equal(G, truth["G"][lo:hi])
        np.testing.assert_array_equal(b_bin, truth["b_bin"][lo:hi])
        np.testing.assert_array_equal(planted.signal_block(block), truth["signal"][:, :, lo:hi])
    assert yaml.safe_load(write_example_config(stored.root, []).read_text())["store"] == "store.zarr"
    assert "store" not in yaml.safe_load(write_example_config(streamed.root, []).read_text())


def _traced_peak(run) -> tuple[object, int]:
    tracemalloc.start()
    try:
        return run(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_store_does_not_depend_on_the_chunk_size_and_memory_follows_the_block(tmp_path):
    kwargs = dict(n_cells=4, n_assays=5, seed=2, signal_format="store", dense_truth=False, block_bins=16_384)
    simulate_compendium(tmp_path / "warm-up", n_bins=1000, **kwargs)  # first-use allocations of zarr and numpy
    _, short_peak = _traced_peak(lambda: simulate_compendium(tmp_path / "short", n_bins=50_000, chunk_bins=5000,
                                                             **kwargs))
    small, peak = _traced_peak(lambda: simulate_compendium(tmp_path / "small", n_bins=200_000, chunk_bins=5000,
                                                           **kwargs))
    large = simulate_compendium(tmp_path / "large", n_bins=200_000, chunk_bins=65_536, **kwargs)
    assert SignalStore.open(small.store).chunk_bins == 5000
    signal = _store_signal(small.store)
    assert signal.shape == (200_000, 20) and not np.isnan(signal).any()
    np.testing.assert_array_equal(signal, _store_signal(large.store))
    # 4x the bins, the same peak: holding the genome's signal would add 12 MB (3/4 of signal.nbytes)
    assert peak < short_peak + signal.nbytes / 10


@needs_layout
def test_cli_writes_the_whole_roadmap_layout_as_a_store(tmp_path):
    splits = json.loads((ROADMAP_LAYOUT / "predictd_splits.json").read_text())
    real = {tuple(name.split("-", 1)) for part in splits.values() for name in part}
    out = tmp_path / "roadmap"
    result = CliRunner().invoke(app, ["simulate", str(out), "--layout", str(ROADMAP_LAYOUT), "--bins", "100",
                                      "--format", "store", "--rank", "5", "--seed", "3"])
    assert result.exit_code == 0, result.stderr
    assert "1014 experiments of 127 cell types x 24 assays" in result.stdout

    tracks = [line.split("\t") for line in (out / "tracks.tsv").read_text().splitlines()[1:]]
    assert len(tracks) == 1014 and {(cell, assay) for cell, assay, *_ in tracks} == real
    store = SignalStore.open(out / "store.zarr")
    assert [(e.cell_type, e.assay) for e in store.experiments] == [(cell, assay) for cell, assay, *_ in tracks]
    assert _store_signal(out / "store.zarr").shape == (100, 1014)
    planted = load_truth(out / "truth.npz")
    assert (len(planted.cells), len(planted.assays), planted.C.shape[1], planted.seed) == (127, 24, 5, 3)
    assert {(planted.cells[c], planted.assays[a]) for c, a in zip(*np.nonzero(planted.observed_mask))} == real
    config = load_config(out / "run.yaml")
    assert Path(config.store_path) == out / "store.zarr" and config.holdout[0] in {f"{c}:{a}" for c, a in real}


def test_cli_missing_layout_folder_is_named_and_exits_2(tmp_path):
    missing = tmp_path / "no-such-layout"
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "out"), "--layout", str(missing), "--bins", "100"])
    assert result.exit_code == 2
    assert str(missing) in result.stderr and "--layout" in result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written
