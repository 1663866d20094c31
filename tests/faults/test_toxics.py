"""The byte toxics' pure core: each toxic's timing and cuts, and (hypothesis) order, FIN after
data, prefixes and the held-bytes bound under any mix of toxics and any split of the bytes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.faults.model import STREAMS, make_toxic
from playground.faults.toxics import (
    BYTE_TYPES,
    CUTTING_TYPES,
    Abort,
    Close,
    CloseWrite,
    Pause,
    Pipeline,
    Resume,
    Wait,
    Write,
)

pytestmark = pytest.mark.pure


def pipeline(*toxics, seed=1, max_held=1024 * 1024, now=0.0):
    p = Pipeline(random.Random(seed), max_held=max_held)
    for toxic in toxics:
        assert p.add(toxic, now)
    return p


def drive(p, steps, end=True, now=0.0):
    """Feed (gap seconds, bytes) steps, tick at every Wait as a reactor would, then the FIN and
    every tick after it. A paused pipeline gets no bytes until it resumes. Returns (time, action)."""
    log = []
    wait = None

    def apply(actions, t):
        nonlocal wait
        wait = None
        for a in actions:
            if isinstance(a, Wait):
                assert a.at > t or a.at == t and not log
                wait = a.at
            else:
                log.append((t, a))

    for gap, chunk in steps:
        target = now + gap
        while wait is not None and (wait <= target or p.paused):
            now = max(now, wait)
            apply(p.tick(now), now)
        now = max(now, target)
        apply(p.feed(chunk, now), now)
    if end:
        apply(p.eof(now), now)
    for _ in range(100_000):
        if wait is None:
            break
        now = max(now, wait)
        apply(p.tick(now), now)
    return log


def written(log):
    return b"".join(a.data for _, a in log if isinstance(a, Write))


def ends(log):
    return [a for _, a in log if isinstance(a, (CloseWrite, Close, Abort))]


def test_latency_holds_bytes_until_due_then_fin_after_them():
    p = pipeline(make_toxic("latency", attributes={"latency": 200}))
    assert p.feed(b"PING", 0.0) == [Wait(0.2)]
    assert p.eof(0.05) == [Wait(0.2)]
    assert p.tick(0.1) == [Wait(0.2)]
    assert p.tick(0.2) == [Write(b"PING"), CloseWrite()]
    assert p.tick(0.3) == []


def test_jitter_stays_within_bounds_and_order_is_kept():
    toxic = make_toxic("latency", attributes={"latency": 100, "jitter": 50})
    log = drive(pipeline(toxic, seed=7), [(0.001, bytes([i])) for i in range(50)])
    assert written(log) == bytes(range(50))
    delays = {pipeline(toxic, seed=seed).feed(b"x", 0.0)[0].at for seed in range(50)}
    assert min(delays) >= 0.05 and max(delays) <= 0.15 and len(delays) > 10


def test_same_seed_same_run():
    toxic = make_toxic("slicer", attributes={"average_size": 5, "size_variation": 3, "delay": 10})
    steps = [(0.0, b"x" * 100)]
    assert drive(pipeline(toxic, seed=3), steps) == drive(pipeline(toxic, seed=3), steps)


def test_bandwidth_paces_at_the_rate():
    p = pipeline(make_toxic("bandwidth", attributes={"rate": 10}))  # 10 KB/s
    log = drive(p, [(0.0, b"x" * 20 * 1024)])
    writes = [(t, a) for t, a in log if isinstance(a, Write)]
    assert written(log) == b"x" * 20 * 1024
    assert writes[-1][0] == pytest.approx(2.0)
    assert all(len(a.data) == 1024 for _, a in writes)  # a tenth of a second each


def test_slicer_cuts_into_segments_delay_apart():
    toxic = make_toxic("slicer", attributes={"average_size": 10, "size_variation": 4,
                                             "delay": 1000})
    log = drive(pipeline(toxic), [(0.0, bytes(range(100)))], end=False)
    writes = [(t, a.data) for t, a in log if isinstance(a, Write)]
    assert b"".join(d for _, d in writes) == bytes(range(100))
    assert len(writes) > 5 and all(6 <= len(d) <= 14 for _, d in writes[:-1])
    assert [round(t, 6) for t, _ in writes] == [round(i * 0.001, 6) for i in range(len(writes))]


def test_slow_close_delays_only_the_fin():
    p = pipeline(make_toxic("slow_close", attributes={"delay": 500}))
    assert p.feed(b"bye", 1.0) == [Write(b"bye")]
    assert p.eof(1.0) == [Wait(1.5)]
    assert p.tick(1.5) == [CloseWrite()]


def test_timeout_zero_drops_everything_and_never_closes():
    p = pipeline(make_toxic("timeout"))
    log = drive(p, [(0.0, b"lost"), (10.0, b"lost too")])
    assert log == []


def test_timeout_closes_after_its_time():
    toxic = make_toxic("timeout", attributes={"timeout": 1000})
    p = pipeline(toxic)
    assert p.feed(b"dropped", 0.5) == [Wait(1.0)]
    assert p.tick(1.0) == [Close(toxic)]
    assert p.feed(b"more", 1.1) == []


def test_reset_peer_resets_after_its_time_bytes_before_it_pass():
    toxic = make_toxic("reset_peer", attributes={"timeout": 300})
    p = pipeline(toxic)
    assert p.feed(b"first", 0.1) == [Write(b"first"), Wait(0.3)]
    assert p.tick(0.3) == [Abort(toxic)]


def test_reset_peer_zero_resets_at_once():
    toxic = make_toxic("reset_peer")
    assert pipeline(toxic).feed(b"x", 0.0) == [Abort(toxic)]


def test_limit_data_passes_n_bytes_then_closes():
    toxic = make_toxic("limit_data", attributes={"bytes": 10})
    p = pipeline(toxic)
    assert p.feed(b"12345", 0.0) == [Write(b"12345")]
    assert p.feed(b"67890abc", 0.1) == [Write(b"67890"), Close(toxic)]
    assert p.feed(b"more", 0.2) == []


def test_limit_data_close_waits_for_delayed_bytes():
    limit = make_toxic("limit_data", attributes={"bytes": 3})
    p = pipeline(limit, make_toxic("latency", attributes={"latency": 100}))
    assert p.feed(b"abcdef", 0.0) == [Wait(0.1)]
    assert p.tick(0.1) == [Write(b"abc"), Close(limit)]


def test_half_open_black_holes_after_its_time_and_swallows_the_fin():
    p = pipeline(make_toxic("half_open", attributes={"after": 1000}))
    assert p.feed(b"before", 0.5) == [Write(b"before")]
    assert p.feed(b"after", 1.5) == []
    assert p.eof(2.0) == []
    assert not p.done


def test_toxicity_decides_per_pipeline():
    toxic = make_toxic("latency", toxicity=0.5)
    added = [Pipeline(random.Random(seed)).add(toxic, 0.0) for seed in range(200)]
    assert 60 < sum(added) < 140
    assert not Pipeline(random.Random(1)).add(make_toxic("latency", toxicity=0.0), 0.0)


def test_removing_a_toxic_applies_to_the_next_bytes_queued_ones_keep_their_time():
    p = pipeline(make_toxic("latency", attributes={"latency": 1000}))
    assert p.feed(b"slow", 0.0) == [Wait(1.0)]
    assert p.remove("latency_downstream")  # no time given: the queued bytes keep theirs
    assert p.feed(b"fast", 0.1) == [Wait(1.0)]  # behind "slow": order is kept
    assert p.tick(1.0) == [Write(b"slowfast")]
    assert p.feed(b"now", 1.1) == [Write(b"now")]


def test_removing_the_last_toxic_lets_what_it_held_go_at_once_in_order():
    p = pipeline(make_toxic("latency", attributes={"latency": 3_600_000}))  # an hour
    assert p.feed(b"held", 0.0) == [Wait(3600.0)]
    assert p.eof(0.1) == [Wait(3600.0)]
    assert p.remove("latency_downstream", 0.5)
    assert p.tick(0.5) == [Write(b"held"), CloseWrite()]  # the FIN still after the bytes


def test_removing_one_of_two_toxics_leaves_the_queue_to_the_other():
    p = pipeline(make_toxic("latency", attributes={"latency": 1000}),
                 make_toxic("slow_close", attributes={"delay": 10}))
    assert p.feed(b"x", 0.0) == [Wait(1.0)]
    assert p.remove("latency_downstream", 0.5)
    assert p.tick(0.5) == [Wait(1.0)]  # a stage is left: the queued bytes keep their time


def test_update_replaces_in_place():
    p = pipeline(make_toxic("latency", attributes={"latency": 1000}))
    assert p.update(make_toxic("latency", attributes={"latency": 10}), 0.0)
    assert p.feed(b"x", 0.0) == [Wait(0.01)]


def test_pause_above_the_bound_resume_below_half():
    p = pipeline(make_toxic("latency", attributes={"latency": 100}), max_held=12)
    assert p.feed(b"x" * 9, 0.0) == [Wait(0.1)]
    assert p.feed(b"y" * 4, 0.05) == [Pause(), Wait(0.1)]
    assert p.tick(0.1) == [Write(b"x" * 9), Resume(), Wait(pytest.approx(0.15))]


def test_tiny_slices_pause_on_their_count_not_only_their_bytes():
    # 1-byte slices: each costs ~100 bytes of bookkeeping, so 1 MiB held was ~110 MB in memory
    p = pipeline(make_toxic("slicer", attributes={"average_size": 1, "delay": 1000}))
    fed, written, actions = 0, 0, []
    while Pause() not in actions:
        actions = p.feed(b"x" * 4096, 0.0)
        fed += 4096
        assert fed <= 64 * 1024, "no Pause after 64 KiB of 1-byte slices"
        written += sum(len(a.data) for a in actions if type(a) is Write)  # pieces due at 0
    actions = p.tick(1e9)
    assert Resume() in actions and p.held == 0
    assert sum(len(a.data) for a in actions if type(a) is Write) + written == fed


def test_protocol_and_service_toxics_are_not_byte_stages():
    p = Pipeline(random.Random(1))
    assert not p.add(make_toxic("down"), 0.0)
    assert not p.add(make_toxic("resp"), 0.0)
    assert not p


@st.composite
def toxic_lists(draw, types):
    out = []
    for i, type_ in enumerate(draw(st.lists(st.sampled_from(types), max_size=4))):
        attributes = {
            "latency": lambda: {"latency": draw(st.integers(0, 300)),
                                "jitter": draw(st.integers(0, 100))},
            "bandwidth": lambda: {"rate": draw(st.integers(0, 64))},
            "slicer": lambda: {"average_size": draw(st.integers(0, 20)),
                               "size_variation": draw(st.integers(0, 20)),
                               "delay": draw(st.integers(0, 5000))},
            "slow_close": lambda: {"delay": draw(st.integers(0, 500))},
            "timeout": lambda: {"timeout": draw(st.integers(0, 2000))},
            "reset_peer": lambda: {"timeout": draw(st.integers(0, 2000))},
            "limit_data": lambda: {"bytes": draw(st.integers(0, 3000))},
            "half_open": lambda: {"after": draw(st.integers(0, 2000))},
        }[type_]()
        out.append(make_toxic(type_, name=f"t{i}", stream=draw(st.sampled_from(STREAMS)),
                              attributes=attributes))
    return out


steps_strategy = st.lists(st.tuples(st.floats(0, 0.5), st.binary(min_size=1, max_size=600)),
                          max_size=12)


@given(toxic_lists([t for t in BYTE_TYPES if t not in CUTTING_TYPES]), steps_strategy,
       st.integers(0, 2**32))
def test_without_cutting_toxics_every_byte_arrives_in_order_then_the_fin(toxics, steps, seed):
    log = drive(pipeline(*toxics, seed=seed), steps)
    assert written(log) == b"".join(chunk for _, chunk in steps)
    assert ends(log) == [CloseWrite()]
    assert isinstance(log[-1][1], CloseWrite)


@given(toxic_lists(list(BYTE_TYPES)), steps_strategy, st.integers(0, 2**32), st.booleans())
def test_any_mix_delivers_a_prefix_and_ends_at_most_once(toxics, steps, seed, fin):
    log = drive(pipeline(*toxics, seed=seed), steps, end=fin)
    sent = b"".join(chunk for _, chunk in steps)
    assert sent.startswith(written(log))
    finals = ends(log)
    assert len(finals) <= 1
    if finals:
        assert log[-1][1] == finals[0]


@given(toxic_lists(list(BYTE_TYPES)), steps_strategy, st.integers(0, 2**32))
def test_held_bytes_stay_bounded_when_pause_is_obeyed(toxics, steps, seed):
    p = pipeline(*toxics, seed=seed, max_held=1000)
    seen = []
    original = p.tick

    def tick(now):
        actions = original(now)
        seen.append(p.held)
        return actions

    p.tick = tick
    drive(p, steps)
    assert max(seen, default=0) <= 1000 + 600
