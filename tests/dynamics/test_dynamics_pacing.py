"""Per-gesture cooldown and global minimum gap, on an injected clock."""

from __future__ import annotations

from agent.dynamics.pacing import Pacer
from devkit.dynamics_standins import ManualClock


def test_same_gesture_waits_for_its_cooldown() -> None:
    clock = ManualClock()
    pacer = Pacer(cooldown=3.0, min_gap=0.0, clock=clock)
    assert pacer.allow("wave")
    clock.advance(2.999)
    assert not pacer.allow("wave")
    clock.advance(0.001)
    assert pacer.allow("wave")


def test_refused_triggers_do_not_restart_the_cooldown() -> None:
    clock = ManualClock()
    pacer = Pacer(cooldown=3.0, min_gap=0.0, clock=clock)
    assert pacer.allow("wave")
    for _ in range(5):
        clock.advance(0.5)
        assert not pacer.allow("wave")
    clock.advance(0.5)
    assert pacer.allow("wave")


def test_global_gap_holds_back_other_gestures() -> None:
    clock = ManualClock()
    pacer = Pacer(cooldown=3.0, min_gap=1.0, clock=clock)
    assert pacer.allow("wave")
    clock.advance(0.5)
    assert not pacer.allow("laugh")
    clock.advance(0.5)
    assert pacer.allow("laugh")
    assert not pacer.allow("nod")


def test_per_gesture_cooldowns_override_the_default() -> None:
    clock = ManualClock()
    pacer = Pacer(cooldown=3.0, min_gap=0.0, cooldowns={"wave": 10.0, "nod": 0.0}, clock=clock)
    assert pacer.allow("wave") and pacer.allow("nod") and pacer.allow("laugh")
    assert pacer.allow("nod")
    clock.advance(5.0)
    assert pacer.allow("laugh")
    assert not pacer.allow("wave")
    clock.advance(5.0)
    assert pacer.allow("wave")
