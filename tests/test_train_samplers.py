"""Which images each epoch and each rank sees: balanced draws, disjoint DDP shards."""

from __future__ import annotations

from collections import Counter

import numpy as np

from imgcls.train.distributed import DistEnv, EpochSampler, ShardSampler


def test_balanced_sampler_draws_classes_equally_and_repeats_per_epoch():
    labels = np.array([0] * 90 + [1] * 10)
    weights = 1.0 / np.bincount(labels)[labels]
    sampler = EpochSampler(100, seed=3, env=DistEnv(), weights=weights)
    drawn = []
    for epoch in range(1, 41):
        sampler.set_epoch(epoch)
        drawn += list(sampler)
    share = Counter(labels[drawn].tolist())[1] / len(drawn)
    assert 0.45 < share < 0.55
    sampler.set_epoch(7)
    first = list(sampler)
    sampler.set_epoch(7)
    assert list(sampler) == first


def test_epoch_sampler_splits_ranks_evenly_and_disjointly():
    shares = []
    for rank in range(2):
        sampler = EpochSampler(11, seed=0, env=DistEnv(rank, rank, 2))
        sampler.set_epoch(1)
        shares.append(list(sampler))
    assert len(shares[0]) == len(shares[1]) == 6
    assert set(shares[0]) | set(shares[1]) == set(range(11))
    val = [list(ShardSampler(11, DistEnv(r, r, 2))) for r in range(2)]
    assert sorted(val[0] + val[1]) == list(range(11))
