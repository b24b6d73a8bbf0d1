"""Mute arbitration (MuteControl), step by step, without a daemon, a device or a pin."""

from __future__ import annotations

from recorder.mute import SWITCH_OVERRIDES, MuteChange, MuteControl, MuteStep


def test_nothing_to_do_while_the_state_is_the_one_asked_for():
    for muted in (False, True):
        control = MuteControl(muted)
        assert control.step(muted=muted, forced=False, closable=False, closed=False) is None


def test_a_request_is_applied_with_who_asked():
    control = MuteControl(False)
    control.request(True, 1000)
    step = control.step(muted=False, forced=False, closable=False, closed=False)
    assert step == MuteStep(close_device=None, change=MuteChange(True, 1000, by_switch=False))
    control.request(False, 1001)
    step = control.step(muted=True, forced=False, closable=False, closed=False)
    assert step == MuteStep(None, MuteChange(False, 1001, by_switch=False))


def test_the_last_of_several_requests_wins():
    control = MuteControl(False)
    control.request(True, 1)
    control.request(False, 2)
    assert control.step(muted=False, forced=False, closable=False, closed=False) is None


def test_muted_is_shown_only_once_a_closable_device_is_released():
    control = MuteControl(False)
    control.request(True, 7)
    waiting = MuteStep(close_device=True, change=None)
    assert control.step(muted=False, forced=False, closable=True, closed=False) == waiting
    assert control.step(muted=False, forced=False, closable=True, closed=False) == waiting
    step = control.step(muted=False, forced=False, closable=True, closed=True)
    assert step == MuteStep(True, MuteChange(True, 7, by_switch=False))
    control.request(False, 7)  # unmute reopens the device and is applied at once
    step = control.step(muted=True, forced=False, closable=True, closed=True)
    assert step == MuteStep(False, MuteChange(False, 7, by_switch=False))


def test_the_switch_forces_mute_and_its_release_unmutes_by_the_switch():
    control = MuteControl(False)
    step = control.step(muted=False, forced=True, closable=False, closed=False)
    assert step == MuteStep(None, MuteChange(True, None, by_switch=True))
    assert control.step(muted=True, forced=True, closable=False, closed=False) is None
    step = control.step(muted=True, forced=False, closable=False, closed=False)
    assert step == MuteStep(None, MuteChange(False, None, by_switch=True))


def test_a_mute_asked_for_outlasts_the_switch():
    control = MuteControl(False)
    control.step(muted=False, forced=True, closable=False, closed=False)
    control.request(True, 1000)  # asked for while the switch forces it
    assert control.step(muted=True, forced=False, closable=False, closed=False) is None


def test_a_daemon_started_muted_stays_muted_until_asked():
    control = MuteControl(True)
    assert control.step(muted=True, forced=False, closable=True, closed=True) is None
    control.request(False, None)
    step = control.step(muted=True, forced=False, closable=True, closed=True)
    assert step == MuteStep(False, MuteChange(False, None, by_switch=False))


def test_unmute_is_refused_while_the_switch_is_on_and_the_status_says_muted():
    assert MuteControl.refusal(False, forced=True) == SWITCH_OVERRIDES
    assert MuteControl.refusal(True, forced=True) is None
    assert MuteControl.refusal(False, forced=False) is None
    assert MuteControl.shown_muted(False, forced=True) and MuteControl.shown_muted(True, False)
    assert not MuteControl.shown_muted(False, forced=False)
