"""The bounded per-stream chunk queue (csrc/runtime/chunk_queue.h, through _C._testing.IntQueue).

Back-pressure: a full queue refuses pushes (the engine then does not schedule the stream).
pop() waits with the GIL released, times out, and drains before reporting a closed queue.
"""

from __future__ import annotations

import threading
import time

from omniforcing_rt import _C

Q = _C._testing.IntQueue


def test_capacity_is_back_pressure():
    q = Q(2)
    assert q.try_push(1) and q.try_push(2)
    assert q.full() and not q.try_push(3) and len(q) == 2
    assert q.pop(0.0) == (1, False)
    assert not q.full() and q.try_push(3)
    assert [q.pop(0.0)[0] for _ in range(2)] == [2, 3]


def test_pop_times_out_and_close_drains():
    q = Q(3)
    t0 = time.perf_counter()
    assert q.pop(0.05) == (None, True)
    assert time.perf_counter() - t0 >= 0.04
    q.try_push(7)
    q.close()
    assert not q.try_push(8)
    assert q.pop(1.0) == (7, False)
    assert q.pop(1.0) == (None, False)  # closed and drained: no wait, no timeout


def test_close_with_drop_discards():
    q = Q(3)
    q.try_push(1)
    q.close(drop=True)
    assert q.closed() and len(q) == 0 and q.pop(-1) == (None, False)


def test_blocking_pop_releases_the_gil_and_wakes_on_push():
    q = Q(1)
    ticks = []
    got = []

    def consumer():
        got.append(q.pop(-1))

    th = threading.Thread(target=consumer)
    th.start()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.1:  # Python keeps running while the consumer waits in C++
        ticks.append(1)
    assert th.is_alive() and len(ticks) > 100
    q.try_push(42)
    th.join(5)
    assert got == [(42, False)]
