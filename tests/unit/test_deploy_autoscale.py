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
    assert parse_config("'*': {app: myapp, dynosize: perf-m}\nr: {boot: 20}")["r"].maximum == 5


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
    scaler = Scaler(r)
    workers = 1
    seen = []
    for queued in [100, 0, 0, 0, 0]:
        decision = scaler.step(queued, workers)
        workers = decision.next if decision.next is not None else workers
        seen.append(workers)
    assert seen == [20, 20, 20, 20, 1]


def test_an_oscillating_estimate_does_not_make_the_scaler_oscillate() -> None:
    r = parse_config("r: {processing: 10, deadline: 60, stddev: 0, max: 50}")["r"]
    scaler = Scaler(r)
    workers = 1
    changes = 0
    for queued in [100, 0, 100, 0, 100, 0, 100, 0]:
        decision = scaler.step(queued, workers)
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
