"""predictd's bigWig writing: files of fixed-size bins, written in one pass or in parts put together by copying.

One module per idea, from the bottom up:

- :mod:`~predictd_core.tracks.bigwig.format`: the file layout (magic numbers, header structs, record dtypes, the
  contig B+ tree and R-trees as bytes, :class:`~predictd_core.tracks.bigwig.format.BigWigFile` writing them in
  file order around the blocks, and the atomic file it writes through);
- :mod:`~predictd_core.tracks.bigwig.zoom`: zoom levels (their reductions, summary records of bins summed level
  by level, zoom blocks);
- :mod:`~predictd_core.tracks.bigwig.writer`: fixed-step data blocks, the runs of appended bins both writers
  share (:class:`FixedStepRuns`) and the one-pass writer (:class:`FixedStepBigWigWriter`);
- :mod:`~predictd_core.tracks.bigwig.parts`: one track's bins over one range of genome bins as a part file
  (:class:`BigWigPart`);
- :mod:`~predictd_core.tracks.bigwig.assembly`: the bigWig put together from its parts (:class:`Assembly`,
  :func:`assemble`).

The names re-exported here are the ones users outside the package need.
"""

from predictd_core.tracks.bigwig.assembly import Assembly, PartSource, assemble
from predictd_core.tracks.bigwig.format import DEFAULT_COMPRESS
from predictd_core.tracks.bigwig.parts import BigWigPart
from predictd_core.tracks.bigwig.writer import VALUES_PER_BLOCK, FixedStepBigWigWriter, FixedStepRuns
from predictd_core.tracks.bigwig.zoom import zoom_reductions

__all__ = ["DEFAULT_COMPRESS", "VALUES_PER_BLOCK", "Assembly", "BigWigPart", "FixedStepBigWigWriter", "FixedStepRuns",
           "PartSource", "assemble", "zoom_reductions"]
