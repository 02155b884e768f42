"""predictd against its peers on the real Roadmap pilot tracks: Latin-square hold-outs with honest margins.

Each square holds out 5 targets, one per cell type and one per mark (:mod:`bench.accuracy.latin_square`:
the 5 cyclic squares, two for design and three kept back for the final check); every method trains on
the square's other 20 tracks and imputes its 5 targets on the bins of predictd's signal store
(:mod:`bench.accuracy.problem`); all are scored with predictd's own ``quality_measures`` on the same
bins (:mod:`bench.accuracy.scoring`), and predictd's margin over each peer gets a paired block-bootstrap
interval (:mod:`bench.accuracy.bootstrap`, :mod:`bench.accuracy.margins`). See README.md beside this file.

    .venv/bin/python -m bench.accuracy --out DIR [--methods ...] [--bins N] [--squares NAME... | --design | --kept-back]
"""
