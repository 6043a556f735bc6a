"""A UNet ``Linear`` gives each job's rows the result they get alone, whatever batch they share
(:mod:`sdapi.engine.batch_invariance`)."""

from __future__ import annotations

import torch

from sdapi.engine.batch_invariance import (InvariantLinear, RowGroups, invariant_product, make_batch_invariant,
                                           row_groups, split_free_rows)


def test_rows_of_each_job_match_the_job_alone():
    torch.manual_seed(0)
    layer = torch.nn.Linear(1280, 320)
    jobs = [torch.randn(2, 3, 1280), torch.randn(4, 3, 1280), torch.randn(2, 3, 1280)]
    merged = torch.cat(jobs)
    groups = RowGroups(rows=((0, 1), (2, 3, 4, 5), (6, 7)), total=8)
    with torch.no_grad(), row_groups(groups):
        out = invariant_product(layer, merged, 1280)
    with torch.no_grad():
        alone = [layer(x) for x in jobs]
    for rows, expected in zip(groups.rows, alone):
        assert torch.equal(out[list(rows)], expected)


def test_interleaved_rows_are_gathered_per_job():
    torch.manual_seed(1)
    layer = torch.nn.Linear(64, 8)
    a, b = torch.randn(2, 64), torch.randn(2, 64)
    merged = torch.stack([a[0], b[0], a[1], b[1]])  # uncond rows first, then cond rows
    with torch.no_grad(), row_groups(RowGroups(rows=((0, 2), (1, 3)), total=4)):
        out = invariant_product(layer, merged, 64)
    with torch.no_grad():
        assert torch.equal(out[[0, 2]], layer(a)) and torch.equal(out[[1, 3]], layer(b))


def test_outside_a_merged_batch_it_is_the_plain_layer():
    layer = torch.nn.Linear(16, 4)
    x = torch.randn(3, 16)
    with torch.no_grad():
        assert torch.equal(invariant_product(layer, x, 16), layer(x))
        # A call of another size inside a merged batch (not the UNet's rows) is not split either.
        with row_groups(RowGroups(rows=((0,), (1,)), total=2)):
            assert torch.equal(invariant_product(layer, x, 16), layer(x))


def test_split_free_rows_grows_with_long_reductions():
    assert split_free_rows(320) == 16 and split_free_rows(5120) == 2560


def test_make_batch_invariant_keeps_weights_and_swaps_only_linear():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Conv2d(1, 1, 1), torch.nn.Linear(8, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert make_batch_invariant(model) == 2
    assert type(model[0]) is InvariantLinear and type(model[1]) is torch.nn.Conv2d
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert make_batch_invariant(model) == 0
