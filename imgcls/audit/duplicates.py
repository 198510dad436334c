"""Near-duplicate images by perceptual hash, for ``imgcls data audit``.

``imgcls data check`` finds files with the same bytes; this finds the same picture
saved again: resized, re-encoded, slightly recoloured. Each image gets a 64-bit
DCT hash (pHash) of its 32x32 grayscale version; two images whose hashes differ in
at most ``max_distance`` bits are near-duplicates. Pairs are found without comparing
every pair: split into ``max_distance + 1`` bands, two hashes that close agree on at
least one band (pigeonhole), so only images sharing a band value are compared.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError, DecodeError
from ..images import decode
from ..system import default_workers

HASH_SIDE = 32  # the grayscale image the DCT is taken of
LOW_FREQUENCIES = 8  # 8 x 8 lowest DCT frequencies -> 64 bits
DEFAULT_MAX_DISTANCE = 6
MAX_DISTANCE = 16  # above this, different pictures start to match


@dataclass(frozen=True)
class Entry:
    """One image of the data set: where it is, which split and which (given) label."""

    path: Path
    split: str
    label: str


@dataclass(frozen=True)
class DuplicateGroup:
    """Images within ``distance`` bits of each other (through a chain of close pairs)."""

    members: tuple[Entry, ...]
    distance: int

    @property
    def across_classes(self) -> bool:
        return len({member.label for member in self.members}) > 1

    @property
    def across_splits(self) -> bool:
        return len({member.split for member in self.members}) > 1

    @property
    def kind(self) -> str:
        kinds = [name for name, found in (("classes", self.across_classes),
                                          ("train/val", self.across_splits)) if found]
        return ",".join(kinds)


def check_distance(max_distance: int) -> int:
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise ConfigError(f"--max-distance must be 0 to {MAX_DISTANCE} bits, got {max_distance}.",
                          f"For example: --max-distance {DEFAULT_MAX_DISTANCE} (0: identical "
                          "hashes only), or --no-duplicates to skip the search.")
    return max_distance


def perceptual_hash(path: str | Path) -> int:
    """The 64-bit pHash of one image; DecodeError when it cannot be decoded."""
    from scipy.fft import dctn

    image = decode(path, draft_size=(2 * HASH_SIDE, 2 * HASH_SIDE)).convert("L")
    small = image.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    low = dctn(pixels, norm="ortho")[:LOW_FREQUENCIES, :LOW_FREQUENCIES].ravel()
    # The DC term (overall brightness) is left out of the median, as pHash does.
    bits = low > np.median(low[1:])
    return int(np.packbits(bits).view(">u8")[0])


def hash_images(paths: Sequence[Path], workers: int | None = None,
                on_progress: Callable[[int, int], None] | None = None
                ) -> tuple[list[int | None], list[tuple[Path, str]]]:
    """A hash per path (None where it cannot be decoded) and the (path, reason) failures."""
    def one(path: Path) -> tuple[int | None, str]:
        try:
            return perceptual_hash(path), ""
        except DecodeError as exc:
            return None, exc.message

    hashes: list[int | None] = []
    failures: list[tuple[Path, str]] = []
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        results = zip(paths, pool.map(one, paths), strict=True)
        for done, (path, (value, reason)) in enumerate(results, start=1):
            hashes.append(value)
            if value is None:
                failures.append((path, reason))
            if on_progress:
                on_progress(done, len(paths))
    return hashes, failures


def close_pairs(hashes: np.ndarray, max_distance: int) -> list[tuple[int, int, int]]:
    """(i, j, bits) for every pair i < j of uint64 ``hashes`` within ``max_distance`` bits."""
    bands = max_distance + 1
    edges = np.linspace(0, 64, bands + 1).astype(int)
    found: dict[tuple[int, int], int] = {}
    for low, high in itertools.pairwise(edges.tolist()):
        mask = np.uint64((1 << (high - low)) - 1)
        keys = (hashes >> np.uint64(low)) & mask
        buckets: dict[int, list[int]] = defaultdict(list)
        for index, key in enumerate(keys.tolist()):
            buckets[key].append(index)
        for members in buckets.values():
            if len(members) > 1:
                _compare(hashes, np.asarray(members), max_distance, found)
    return sorted((i, j, bits) for (i, j), bits in found.items())


def _compare(hashes: np.ndarray, members: np.ndarray, max_distance: int,
             found: dict[tuple[int, int], int]) -> None:
    for position, i in enumerate(members[:-1].tolist()):
        rest = members[position + 1:]
        bits = np.bitwise_count(hashes[rest] ^ hashes[i])
        for j, distance in zip(rest[bits <= max_distance].tolist(),
                               bits[bits <= max_distance].tolist(), strict=True):
            found[(i, j)] = int(distance)


def near_duplicates(entries: Sequence[Entry], max_distance: int = DEFAULT_MAX_DISTANCE,
                    workers: int | None = None,
                    on_progress: Callable[[int, int], None] | None = None
                    ) -> tuple[list[DuplicateGroup], list[tuple[Path, str]]]:
    """Groups of near-duplicates that span classes or train/val, and unreadable files.

    Groups within one class and one split are left out: they do not mislabel
    anything or leak into validation (``imgcls data check`` lists exact copies).
    """
    check_distance(max_distance)
    hashes, failures = hash_images([entry.path for entry in entries], workers, on_progress)
    usable = [i for i, value in enumerate(hashes) if value is not None]
    values = np.array([hashes[i] for i in usable], dtype=np.uint64)
    pairs = close_pairs(values, max_distance)
    parent = list(range(len(usable)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        parent[root(i)] = root(j)
    members: dict[int, list[int]] = defaultdict(list)
    widest: dict[int, int] = defaultdict(int)
    for i, _, bits in pairs:
        widest[root(i)] = max(widest[root(i)], bits)
    for i in {index for pair in pairs for index in pair[:2]}:
        members[root(i)].append(i)
    groups = [DuplicateGroup(tuple(entries[usable[i]] for i in sorted(found)), widest[key])
              for key, found in members.items()]
    groups = [group for group in groups if group.across_classes or group.across_splits]
    groups.sort(key=lambda group: (group.distance, str(group.members[0].path)))
    return groups, failures
