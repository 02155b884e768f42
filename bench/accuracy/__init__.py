"""predictd against its peers on the real Roadmap pilot tracks: one Latin-square hold-out.

5 targets, one per cell type and one per mark (:mod:`bench.accuracy.latin_square`); every method
trains on the other 20 tracks and imputes the 5 targets on the bins of predictd's signal store
(:mod:`bench.accuracy.problem`); all are scored with predictd's own ``quality_measures`` on the same
bins (:mod:`bench.accuracy.scoring`). See README.md beside this file.

    .venv/bin/python -m bench.accuracy --out DIR [--methods ...] [--bins N]
"""
