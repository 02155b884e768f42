"""Simulated compendia with a planted low-rank truth, written in the same format as real data.

- :mod:`~predictd_core.simulate.layout`: which (cell type, assay) pairs are measured (a grid with
  dropped pairs, or a Roadmap layout folder),
- :mod:`~predictd_core.simulate.factors`: the planted factors and their chromatin-structure kinds,
- :mod:`~predictd_core.simulate.truth`: the planted truth, its signal regenerated block by block,
- :mod:`~predictd_core.simulate.writing`: the compendium folder (bigWigs or store, ``tracks.tsv``,
  ``chrom.sizes``, ``truth.npz``) and a run config for it.
"""

from predictd_core.simulate.layout import ASSAYS, DEFAULT_GRID, load_roadmap_layout, roadmap_cell_names
from predictd_core.simulate.truth import BLOCK_BINS, PlantedTruth, load_truth, plant
from predictd_core.simulate.writing import SimulatedCompendium, simulate_compendium, write_example_config

__all__ = ["ASSAYS", "BLOCK_BINS", "DEFAULT_GRID", "PlantedTruth", "SimulatedCompendium", "load_roadmap_layout",
           "load_truth", "plant", "roadmap_cell_names", "simulate_compendium", "write_example_config"]
