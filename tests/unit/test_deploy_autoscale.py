"""guv's autoscale configuration and proportional model."""

from __future__ import annotations

from pathlib import Path

import pytest

from msgflo.deploy.autoscale import (
    AutoscaleError,
    Scaler,
    decide,
    for_roles,
    load_config,
    parse_config,
)
from msgflo.deploy.roles import Role

SHOP = Path(__file__).parent / "fixtures" / "deploy" / "shop"


def role(name: str, *queues: str) -> Role:
    return Role(name, "c/C", f"run {name}", ("run", name), queues)


def test_star_entry_gives_defaults_and_roles_override_them() -> None:
    entries = load_config(SHOP / "autoscale.guv.yaml")
    price, store = entries["price"], entries["store"]
    assert "*" not in entries
    assert (price.minimum, price.maximum, price.deadline) == (1, 20, 20.0)
    assert (store.maximum, store.concurrency, store.stddev) == (10, 2, 0.1)
    assert price.stddev == pytest.approx(0.025)  # half the processing time, per role
    assert price.worker == "price" and price.queue is None


def test_guv_defaults_and_shorthands() -> None:
    entry = parse_config("r: {p: 4, d: 100, q: jobs.IN, w: renderer}")["r"]
    assert (entry.processing, entry.deadline, entry.queue, entry.worker) == (
        4,
        100,
        "jobs.IN",
        "renderer",
    )
    default = parse_config("r: {}")["r"]
    assert (default.minimum, default.maximum, default.deadline, default.processing) == (
        1,
        5,
        60,
        10,
    )
    assert (default.concurrency, default.percentile, default.history, default.pollinterval) == (
        1,
        99,
        120,
        30,
    )


def test_heroku_settings_of_guv_files_are_accepted() -> None:
    assert parse_config("'*': {app: myapp, dynosize: perf-m}\nr: {apikey: k}")["r"].maximum == 5


def test_boot_time_comes_off_the_time_jobs_have() -> None:
    fresh = parse_config("r: {processing: 10, deadline: 60, stddev: 0}")["r"]
    slow_start = parse_config("r: {p: 10, deadline: 60, stddev: 0, boot: 25, max: 50}")["r"]
    assert fresh.estimate(20) == 4  # 200 s of work in 50 s
    assert slow_start.estimate(20) == 8  # ... in the 25 s left once the workers are up
    assert slow_start.jobs_per_worker == 2  # what KEDA aims for, boot included
    with pytest.raises(AutoscaleError, match="after a boot of 55 s"):
        parse_config("r: {processing: 10, deadline: 60, stddev: 0, boot: 55}", "a.guv.yaml")


def test_issue_target_needs_six_workers_for_2000_jobs() -> None:
    price = load_config(SHOP / "autoscale.guv.yaml")["price"]
    # 2000 jobs x 50 ms = 100 s of work; ~19.9 s left after the 99th-percentile margin.
    assert price.target == pytest.approx(20 - 2.3263 * 0.025, abs=1e-3)
    assert price.estimate(2000) == 6
    assert price.estimate(0) == 1  # never below min
    assert price.estimate(10**6) == 20  # never above max


def test_concurrency_divides_the_work() -> None:
    one = parse_config("r: {processing: 10, deadline: 60, stddev: 0}")["r"]
    two = parse_config("r: {processing: 10, deadline: 60, stddev: 0, concurrency: 2}")["r"]
    assert one.estimate(20) == 4  # 200 s of work in 50 s
    assert two.estimate(20) == 2
    assert one.jobs_per_worker == 5 and two.jobs_per_worker == 10


def test_scale_up_at_once_down_only_below_recent_history() -> None:
    r = parse_config("r: {processing: 10, deadline: 60, stddev: 0, max: 50}")["r"]
    assert decide(r, 100, 1, []).next == 20  # up at once
    assert decide(r, 100, 20, [20, 20]).next is None  # already right
    held = decide(r, 20, 20, [12, 20])  # estimate 4, recent max 20: stay
    assert held.next is None and held.estimate == 4 and held.history_max == 20
    partial = decide(r, 20, 20, [12, 9])  # down to the recent max only
    assert partial.next == 12
    free = decide(r, 20, 20, [3, 2])  # the past agrees: down to the estimate
    assert free.next == 4
    assert decide(r, 20, None, [30]).next == 4  # unknown current: the estimate
    assert "queued 20" in str(held) and "keep" in str(held)


def test_scaler_returns_to_min_once_the_history_window_has_passed() -> None:
    r = parse_config(
        "r: {processing: 10, deadline: 60, stddev: 0, max: 50, history: 60, pollinterval: 20}"
    )["r"]
    scaler = Scaler(r, opened=0.0)
    workers = 1
    seen = []
    for queued in [100, 0, 0, 0, 0]:
        decision = scaler.step(queued, workers, now=0.0)
        workers = decision.next if decision.next is not None else workers
        seen.append(workers)
    assert seen == [20, 20, 20, 20, 1]


def test_an_oscillating_estimate_does_not_make_the_scaler_oscillate() -> None:
    r = parse_config("r: {processing: 10, deadline: 60, stddev: 0, max: 50}")["r"]
    scaler = Scaler(r, opened=0.0)
    workers = 1
    changes = 0
    for queued in [100, 0, 100, 0, 100, 0, 100, 0]:
        decision = scaler.step(queued, workers, now=0.0)
        if decision.next is not None and decision.next != workers:
            changes += 1
            workers = decision.next
    assert changes == 1 and workers == 20


def test_roles_get_their_queue_from_the_graph() -> None:
    entries = parse_config("price: {}\nother: {worker: store, queue: custom.Q}")
    bound = {e.name: e for e in for_roles(entries, [role("price", "price.IN"), role("store")])}
    assert bound["price"].queue == "price.IN"
    assert bound["other"].queue == "custom.Q"


@pytest.mark.parametrize(
    ("text", "roles", "message"),
    [
        ("pricer: {}", [role("price", "price.IN")], "pricer: no role 'pricer' in the graph"),
        ("price: {}", [role("price")], "role 'price' has no inqueue"),
        ("price: {}", [role("price", "price.IN", "price.B")], "several inqueues"),
    ],
)
def test_bad_roles(text: str, roles: list[Role], message: str) -> None:
    with pytest.raises(AutoscaleError, match=message):
        for_roles(parse_config(text, "a.guv.yaml"), roles, "a.guv.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("r: {min: 5, max: 2}", "a.guv.yaml: r: min 5 > max 2"),
        ("r: {maxx: 2}", "a.guv.yaml: r: unknown setting 'maxx'"),
        ("r: {max: many}", "a.guv.yaml: r.max: must be a number"),
        ("r: {deadline: 5, processing: 10}", "a.guv.yaml: r: deadline 5 s leaves no time"),
        ("r: [1, 2]", "a.guv.yaml: r: must be a mapping"),
        ("- r", "a.guv.yaml: must be a mapping of role to settings"),
        ("r: {min: 1\n", "a.guv.yaml:2:1: not valid YAML"),
    ],
)
def test_bad_settings(text: str, message: str) -> None:
    with pytest.raises(AutoscaleError, match=message) as caught:
        parse_config(text, "a.guv.yaml")
    assert "\n" not in str(caught.value)


def test_a_backlog_that_drains_too_slowly_gets_more_workers() -> None:
    """guv re-reads the deadline at every poll; a batch that waits must not lose workers."""
    r = parse_config("r: {processing: 1, deadline: 60, stddev: 0, max: 50, history: 0}")["r"]
    scaler = Scaler(r, opened=0.0)
    first = scaler.step(590, 1, now=0.0)
    assert first.next == 10 and first.waited == 0  # 590 s of work in 59 s
    # 40 s later the workers were slower than promised: 300 jobs are left.  guv would see
    # 300 s of work in 59 s and want 6 workers; the batch's jobs have waited, so it wants more.
    late = scaler.step(300, 10, now=40.0)
    assert late.waited == pytest.approx(30.0)  # capped: 300 jobs at 10 per second
    assert late.next == 11 and "waited 30.0 s" in str(late)


def test_an_overdue_backlog_asks_for_the_most_workers() -> None:
    r = parse_config("r: {processing: 1, deadline: 60, stddev: 0, max: 50}")["r"]
    assert r.time_left(waited=70) == 1  # never below one job's own time
    assert r.estimate(100, waited=70) == 50


def test_the_wait_restarts_once_the_workers_keep_up() -> None:
    r = parse_config("r: {processing: 1, deadline: 60, stddev: 0, max: 50}")["r"]
    scaler = Scaler(r, opened=0.0)
    assert scaler.step(3, 4, now=100.0).waited == 0  # the workers hold all that is queued
    assert scaler.step(30, 4, now=101.0).waited == 0  # a new backlog starts now
    assert scaler.step(30, 4, now=104.0).waited == pytest.approx(3.0)
    # A standing queue of 30 served by 4 workers: its head has waited ~7.5 s, not forever.
    assert scaler.step(30, 4, now=500.0).waited == pytest.approx(7.5)


def test_measured_start_up_of_new_workers_counts_as_boot() -> None:
    r = parse_config("r: {processing: 1, deadline: 60, stddev: 0, max: 50, boot: 1}")["r"]
    scaler = Scaler(r, opened=0.0)
    assert scaler.step(100, 1, now=0.0, consumers=1).next == 2  # 100 s of work in 58 s
    scaler.step(100, 2, now=4.0, consumers=1)  # the new copy is not consuming yet
    assert scaler.booted == 0.0
    decision = scaler.step(100, 2, now=6.0, consumers=2)
    assert scaler.booted == pytest.approx(6.0) and decision.boot == pytest.approx(6.0)
    assert decision.waited == pytest.approx(6.0)


def test_a_queue_that_does_not_drain_does_not_swing_the_count() -> None:
    """A worker that keeps crashing leaves its queue as it is; the wait the scaler counts
    depends on the worker count, and it must not step down to a count that asks for more."""
    r = parse_config("r: {processing: 1, deadline: 60, stddev: 0, max: 20, history: 30}")["r"]
    scaler = Scaler(r, opened=0.0)
    workers, counts = 1, []
    for second in range(600):
        decision = scaler.step(100, workers, now=float(second))
        workers = decision.next if decision.next is not None else workers
        counts.append(workers)
    assert counts == sorted(counts), "only ever up"
    assert counts[-1] == counts[100] < 20, "settled long ago, below max"
