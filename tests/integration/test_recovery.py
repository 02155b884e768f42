"""Planted low-rank structure is recovered: held-out pairs are imputed close to the noiseless truth."""

import numpy as np

from predictd_core.engine.local import LocalEngine
from predictd_core.train.estimator import Predictd
from predictd_core.model.factors import Layout
from predictd_core.model.settings import ModelSettings
from predictd_core.store.signal_store import ingest
from predictd_core.tracks.genome import read_chrom_sizes
from predictd_core.tracks.table import read_tracks_table
from tests.conftest import write_bigwig


def test_als_recovers_planted_factors_for_unseen_pairs(tmp_path):
    rng = np.random.default_rng(11)
    n_cells, n_assays, rank, n_bins = 6, 5, 3, 4000
    C = rng.normal(0, 1, (n_cells, rank))
    A = rng.normal(0, 1, (n_assays, rank))
    G = rng.gamma(0.6, 0.5, (n_bins, rank))
    b_i = rng.gamma(1.0, 0.3, n_bins)
    truth = 2.0 + b_i[:, None, None] + np.einsum("ck,ak,ik->ica", C, A, G) * 0.5
    truth = np.maximum(truth, 0.0)
    observed = truth + rng.normal(0, 0.05, truth.shape)
    rows = ["cell_type\tassay\tpath"]
    for c in range(n_cells):
        for a in range(n_assays):
            name = f"E{c}.M{a}.bigWig"
            write_bigwig(tmp_path / name, {"chr1": n_bins * 25}, {"chr1": np.sinh(np.maximum(observed[:, c, a], 0))})
            rows.append(f"E{c}\tM{a}\t{name}")
    (tmp_path / "tracks.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "chrom.sizes").write_text(f"chr1\t{n_bins * 25}\n")
    store = ingest(read_tracks_table(tmp_path / "tracks.tsv"), read_chrom_sizes(tmp_path / "chrom.sizes"), 25,
                   tmp_path / "s.zarr", chunk_bins=1000)
    layout = Layout.from_experiments(store.experiments)
    held_out = np.array([0 * n_assays + 1, 2 * n_assays + 3, 5 * n_assays + 0])
    inputs = np.setdiff1d(np.arange(n_cells * n_assays), held_out)
    valid = np.array([1 * n_assays + 2, 3 * n_assays + 4])
    train = np.setdiff1d(inputs, valid)
    settings = ModelSettings(rank=rank, max_iters=40, penalties={"rc": 1e-4, "ra": 1e-4, "ri2": 1e-3})
    engine = LocalEngine(store)
    model = Predictd(settings).fit(engine, layout, train, valid)
    assert model.best_iteration_ > 5  # it learned; the initial factors were not the best
    Y = np.concatenate([store.read_chunk(k) for k in range(store.n_chunks)])
    predicted = model.predict_chunk(Y, inputs, layout.cell_of[held_out], layout.assay_of[held_out])
    for j, column in enumerate(held_out):
        c, a = layout.cell_of[column], layout.assay_of[column]
        target = truth[:, c, a]
        baseline = Y[:, inputs[layout.assay_of[inputs] == a]].mean(axis=1)
        model_mse = np.mean((predicted[:, j] - target) ** 2)
        assert np.corrcoef(predicted[:, j], target)[0, 1] > 0.97
        assert model_mse < 0.2 * np.mean((baseline - target) ** 2)
