"""The watch's headline from its tracks: failing, intermittent, recovered, regressed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.watch.model import (
    FAILING,
    INTERMITTENT,
    RECOVERED,
    REGRESSED,
    WATCHING,
    CheckTrack,
    Headline,
    assess,
    strip,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PROBE = "app.route-probe[mlflow-direct]"
RULES = "routing.listener-rules[mlflow-direct]"


class Watch:
    """Ticks fed by hand, every 30 s, with the headline re-assessed after each."""

    def __init__(self, *ids: str, recover_after: int = 3) -> None:
        self.tracks = {i: CheckTrack(i) for i in ids}
        self.headline = Headline()
        self.recover_after = recover_after
        self.n = 0
        self.seen: list[str] = []

    def tick(self, **samples: list[str]) -> str:
        at = T0 + timedelta(seconds=30 * self.n)
        self.n += 1
        for name, track in self.tracks.items():
            got = samples.get(_key(name), ["pass"])
            answers = ["404 by FastAPI" if s == "fail" else "200 by MLflow" for s in got]
            track.add_tick(got, at=at, answers=answers, summary=f"{name}: {got[-1]}")
        self.headline = assess(
            self.headline, list(self.tracks.values()), recover_after=self.recover_after, at=at
        )
        self.seen.append(self.headline.name)
        return self.headline.name


def _key(check_id: str) -> str:
    return "probe" if check_id == PROBE else "rules"


def test_a_fix_mid_watch_is_called_recovered_within_n_plus_one_ticks():
    watch = Watch(PROBE, RULES)
    for _ in range(3):
        assert watch.tick(probe=["fail"] * 5, rules=["fail"]) == FAILING
    # The fix lands in the middle of a tick: its burst is half broken, half fixed.
    assert watch.tick(probe=["fail", "fail", "pass", "pass", "pass"], rules=["pass"]) == FAILING
    assert watch.headline.detail == "passing again: 0 of 3 clean ticks so far"
    assert watch.tick() == FAILING
    assert watch.tick() == FAILING
    assert watch.headline.detail == "passing again: 2 of 3 clean ticks so far"
    assert watch.tick() == RECOVERED  # the fourth tick after the fix: N + 1 with N = 3
    assert watch.headline.detail == "3 consecutive passes since 09:02:00"
    # A one-way change is not flapping: the watch never called it intermittent.
    assert INTERMITTENT not in watch.seen


def test_flapping_is_intermittent_with_its_rate_and_who_answered():
    watch = Watch(PROBE)
    assert watch.tick(probe=["pass", "fail", "pass", "fail", "pass"]) == INTERMITTENT
    watch.tick(probe=["fail", "pass", "fail", "pass", "fail"])
    detail = watch.headline.detail
    assert detail.startswith("50% of 10 recent results pass, alternating request by request")
    assert "5 of 10 answered 404 by FastAPI" in detail
    assert strip(watch.tracks[PROBE]) == "✅❌✅❌✅❌✅❌✅❌"


def test_failure_after_recovery_is_a_regression_until_it_recovers_again():
    watch = Watch(PROBE, recover_after=2)
    watch.tick(probe=["fail"])
    watch.tick()
    assert watch.tick() == RECOVERED
    assert watch.tick(probe=["fail"]) == REGRESSED
    assert watch.headline.detail == "failing again after recovering at 09:01:00"
    # One passing tick is not a recovery; the watch stays regressed until it is.
    assert watch.tick() == REGRESSED
    assert watch.tick() == RECOVERED


def test_a_path_that_never_failed_is_only_watched_until_it_has_enough_passes():
    watch = Watch(PROBE)
    assert watch.tick() == WATCHING
    assert watch.headline.detail == "passing so far (1 of 3 passes needed)"
    watch.tick()
    assert watch.tick() == RECOVERED


def test_failure_times_and_rates_are_kept_per_check():
    watch = Watch(PROBE, RULES)
    watch.tick(probe=["fail", "pass"], rules=["fail"])
    watch.tick(probe=["pass", "pass"], rules=["pass"])
    watch.tick(probe=["fail", "fail"], rules=["pass"])
    probe, rules = watch.tracks[PROBE], watch.tracks[RULES]
    assert (probe.first_failure_at, probe.last_failure_at) == (
        "2026-03-01T09:00:00Z",
        "2026-03-01T09:01:00Z",
    )
    assert round(probe.rate, 2) == 0.5 and round(rules.rate, 2) == 0.67
    assert rules.ticks == ["fail", "pass", "pass"]


def test_tracks_and_headline_survive_a_round_trip_through_json():
    watch = Watch(PROBE)
    watch.tick(probe=["fail", "pass", "fail"])
    saved = json.loads(json.dumps([t.to_json() for t in watch.tracks.values()]))
    head = json.loads(json.dumps(watch.headline.to_json()))
    again = CheckTrack.from_json(saved[0])
    assert again == watch.tracks[PROBE]
    assert Headline.from_json(head) == watch.headline


def test_timeouts_fail_and_skips_prove_nothing():
    watch = Watch(PROBE, recover_after=2)
    watch.tick(probe=["timeout"])
    assert watch.headline.name == FAILING
    watch.tick(probe=["skipped"])
    watch.tick(probe=["skipped"])
    assert watch.headline.name != RECOVERED
    assert strip(watch.tracks[PROBE]) == "⏱➖➖"
