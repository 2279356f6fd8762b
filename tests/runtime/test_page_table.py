"""The engine's page pool and page tables (csrc/kv_cache, through _C._testing).

The retention rule is checked against the Python reference cache (pipeline/kv_cache.py): after
committing block k a table holds block 0 plus the last ``window_blocks`` blocks. Rotation is
checked directly: an evicted block's pages become the next in-flight pages, so a stream of any
length uses exactly its reservation.
"""

from __future__ import annotations

import itertools

import pytest

from omniforcing_rt import _C
from omniforcing_rt.errors import CacheCapacityError, ConfigError, InputError

T = _C._testing
UNLIMITED = 1 << 40


def make_table(ps=4, first=6, block=5, window=2, max_blocks=UNLIMITED, first_page=0):
    n = T.PageTable.pages_needed(ps, first, block, window, max_blocks)
    pages = list(range(first_page, first_page + n))
    return T.PageTable(ps, first, block, window, max_blocks, pages), pages


def slots_of(group, ps):
    return [group["pages"][t // ps] * ps + t % ps for t in range(group["tokens"])]


def test_pages_needed_formula():
    ps, first, block = 4, 6, 5
    for window, max_blocks in itertools.product((1, 2, 5), (1, 2, 3, 7, UNLIMITED)):
        groups = min(window + 1, max_blocks - 1)
        assert T.PageTable.pages_needed(ps, first, block, window, max_blocks) == 2 + 2 * groups
    assert T.pages_for_tokens(0, 4) == 0 and T.pages_for_tokens(9, 4) == 3


@pytest.mark.parametrize(("window", "page_size"), [(1, 4), (2, 4), (3, 16), (2, 1)])
def test_regions_and_retention_match_the_reference_rule(window, page_size):
    table, pages = make_table(ps=page_size, window=window)
    assert table.block == 0 and table.history_slots == [] and table.committed_blocks == []
    assert table.inflight["pages"] == pages[: len(table.inflight["pages"])]  # block 0 -> pinned pages
    for k in range(12):
        assert table.block == k
        inflight = table.inflight_slots
        assert len(inflight) == (6 if k == 0 else 5)
        assert not set(inflight) & set(table.history_slots)  # never overwrites history
        table.commit()
        kept = [0] + list(range(max(1, k - window + 1), k + 1)) if k else [0]
        assert table.committed_blocks == kept
        # host twin = pinned then window, in token order
        expected = slots_of(table.pinned, page_size)
        for g in table.window:
            expected += slots_of(g, page_size)
        assert table.history_slots == expected
        assert len(expected) == 6 + 5 * (len(kept) - 1)
        owned = set(table.pinned["pages"]) | {p for g in table.window for p in g["pages"]}
        owned |= set(table.inflight["pages"])
        assert owned <= set(pages)  # constant memory: only the reservation is ever used


def test_eviction_is_rotation_not_copy():
    table, _ = make_table(window=2)
    groups = {}
    for k in range(6):
        if k:
            groups[k] = list(table.inflight["pages"])
        table.commit()
    # block 4 reused block 1's pages, block 5 block 2's: the evicted group became the in-flight one
    assert groups[4] == groups[1] and groups[5] == groups[2]
    assert [g["block"] for g in table.window] == [4, 5]
    assert table.inflight["pages"] == groups[3]  # block 6 will take block 3's pages


def test_finite_stream_reserves_only_what_it_uses():
    table, pages = make_table(window=5, max_blocks=3)
    assert len(pages) == 2 + 2 * 2
    for _ in range(3):
        table.commit()
    assert table.committed_blocks == [0, 1, 2]
    assert table.inflight["pages"] == [] and table.block == 3


def test_running_past_the_reservation_raises():
    n = T.PageTable.pages_needed(4, 6, 5, 10, 3)
    table = T.PageTable(4, 6, 5, 10, 3, list(range(n)))
    for _ in range(3):
        table.commit()
    with pytest.raises(CacheCapacityError):
        table.commit()


def test_bad_specs_and_page_counts():
    with pytest.raises(ConfigError) as e:
        T.PageTable.pages_needed(0, 0, 5, 0, 3)
    assert len(e.value.problems) == 3
    with pytest.raises(InputError):
        T.PageTable(4, 6, 5, 1, UNLIMITED, [0, 1])


def test_page_pool_allocate_release():
    pool = T.PagePool(10)
    a = pool.allocate(4)
    assert a == [0, 1, 2, 3] and pool.free_pages == 6
    b = pool.allocate(6)
    assert pool.free_pages == 0 and sorted(a + b) == list(range(10))
    with pytest.raises(CacheCapacityError):
        pool.allocate(1)
    pool.release(a)
    assert pool.free_pages == 4 and pool.allocate(2) == [0, 1]
    with pytest.raises(InputError):
        pool.release([2, 2])
    with pytest.raises(InputError):
        pool.release([99])
