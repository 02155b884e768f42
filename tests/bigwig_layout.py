"""Reading a bigWig's layout from its bytes, independently of predictd's writer, for tests that compare files."""

from __future__ import annotations

import struct


def rtree_leaves(data: bytes, offset: int) -> list[tuple[int, int, tuple[int, int, int, int]]]:
    """(offset, size, bounds) of every block the R-tree at ``offset`` of the file ``data`` indexes, in tree order;
    bounds are (start chrom, start, end chrom, end). The tree's magic and item count are checked."""
    found = []

    def walk(node):
        leaf, _, count = struct.unpack_from("<BBH", data, node)
        for k in range(count):
            if leaf:
                bounds = struct.unpack_from("<IIII", data, node + 4 + 32 * k)
                found.append((*struct.unpack_from("<QQ", data, node + 4 + 32 * k + 16), bounds))
            else:
                walk(struct.unpack_from("<Q", data, node + 4 + 24 * k + 16)[0])

    magic, _, items = struct.unpack_from("<IIQ", data, offset)
    assert magic == 0x2468ACE0
    walk(offset + 48)
    assert len(found) == items
    return found
