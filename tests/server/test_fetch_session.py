"""KIP-227 fetch session cache: ids, epochs, limits, eviction."""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest

from kbroker.clock import ManualClock
from kbroker.fetch_session import (EVICTION_IDLE_S, FETCH_SESSION_ID_NOT_FOUND,
                                   INVALID_FETCH_SESSION_EPOCH, CachedPartition,
                                   FetchSessionCache, FetchSessionError)


def _parts(*keys):
    return OrderedDict((key, CachedPartition(fetch_offset=0, partition_max_bytes=1024)) for key in keys)


def test_session_epochs_advance_and_mismatch_is_rejected():
    cache = FetchSessionCache(10, ManualClock(), rng=random.Random(1))
    session = cache.create(_parts(("t", 0)))
    assert session.session_id > 0 and session.epoch == 1
    assert cache.resume(session.session_id, 1) is session
    assert session.epoch == 2
    with pytest.raises(FetchSessionError) as info:
        cache.resume(session.session_id, 1)
    assert info.value.code == INVALID_FETCH_SESSION_EPOCH
    with pytest.raises(FetchSessionError) as info:
        cache.resume(session.session_id + 1, 2)
    assert info.value.code == FETCH_SESSION_ID_NOT_FOUND


def test_full_cache_refuses_then_evicts_idle_sessions():
    clock = ManualClock()
    cache = FetchSessionCache(2, clock)
    first = cache.create(_parts(("t", 0)))
    cache.create(_parts(("t", 1)))
    assert cache.create(_parts(("t", 2))) is None  # both recently used
    clock.advance(EVICTION_IDLE_S + 1)
    third = cache.create(_parts(("t", 2)))
    assert third is not None and len(cache) == 2
    assert cache.get(first.session_id) is None


def test_zero_slots_disables_sessions():
    assert FetchSessionCache(0, ManualClock()).create(_parts(("t", 0))) is None


def test_forget_topic_and_close():
    cache = FetchSessionCache(10, ManualClock())
    session = cache.create(_parts(("a", 0), ("b", 0)))
    cache.forget_topic("a")
    assert list(session.partitions) == [("b", 0)]
    cache.close(session.session_id)
    assert cache.get(session.session_id) is None


def test_changed_tracks_what_was_sent():
    cached = CachedPartition(fetch_offset=0, partition_max_bytes=1)
    assert cached.changed(5, 5, 0) is True
    assert cached.changed(5, 5, 0) is False
    assert cached.changed(6, 6, 0) is True
