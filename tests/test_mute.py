"""Mute arbitration (MuteControl), step by step, without a daemon, a device or a pin; the push
button on gpiozero's mock pins, toggling through `MuteRequests` and the switch file."""

from __future__ import annotations

import gpiozero
import pytest
from gpiozero.pins.mock import MockFactory

from recorder.mute import (
    BOUNCE_S,
    SWITCH_OVERRIDES,
    MuteButton,
    MuteChange,
    MuteControl,
    MutePushButton,
    MuteRequests,
    MuteStep,
    MuteSwitch,
)


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


def test_a_request_by_the_button_says_so_unless_the_switch_made_the_change():
    control = MuteControl(False)
    control.request(True, None, by_button=True)
    step = control.step(muted=False, forced=False, closable=False, closed=False)
    assert step == MuteStep(None, MuteChange(True, None, by_switch=False, by_button=True))
    control.request(False, None, by_button=True)
    step = control.step(muted=True, forced=True, closable=False, closed=False)  # switch closed
    assert step is None  # still muted: the switch forces it
    step = control.step(muted=True, forced=False, closable=False, closed=False)
    assert step == MuteStep(None, MuteChange(False, None, by_switch=False, by_button=True))


@pytest.fixture
def pins():
    previous = gpiozero.Device.pin_factory
    gpiozero.Device.pin_factory = MockFactory()
    yield gpiozero.Device.pin_factory
    gpiozero.Device.pin_factory.reset()
    gpiozero.Device.pin_factory = previous


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_press_is_one_toggle_whatever_the_contacts_bounce(pins):
    presses, clock = [], Clock()
    button = MutePushButton(17, lambda: presses.append(clock.now), clock=clock)
    pin = pins.pin(17)
    pin.drive_low()  # pressed: counts at once
    for _ in range(3):  # the contacts bounce, within microseconds
        pin.drive_high()
        pin.drive_low()
    clock.now += 0.3  # held
    pin.drive_high()  # released, and bouncing on the way up
    pin.drive_low()
    clock.now += BOUNCE_S / 2
    pin.drive_high()
    assert presses == [100.0]
    clock.now += 2 * BOUNCE_S  # up long enough: the next press counts
    pin.drive_low()
    pin.drive_high()
    assert presses == [100.0, clock.now]
    button.close()
    assert pin.function == "input" and pins.pin(17).state == 1


def test_the_button_toggles_mute_persisted_as_mute_and_unmute_are(tmp_path, pins):
    switch = MuteSwitch(tmp_path / "state")
    muting = MuteRequests(switch, muted=False)
    muting.attach(None, 17)
    pin = pins.pin(17)

    def press() -> None:
        pin.drive_low()
        pin.drive_high()

    def applied() -> list[tuple[bool, int | None, bool]]:
        taken = []
        while not muting.queue.empty():
            taken.append(muting.queue.get_nowait())
        return taken

    press()
    assert switch.is_muted() and muting.shown_muted()  # persisted before the loop applies it
    assert applied() == [(True, None, True)]
    muting.toggle()  # the next press (the debounce is the button's own test)
    assert not switch.is_muted() and applied() == [(False, None, True)]
    muting.button = MuteButton(18)  # the mute switch closed: the button cannot unmute
    pins.pin(18).drive_low()
    assert muting.shown_muted() and not switch.is_muted()
    muting.toggle()  # shown muted, so the button asks to unmute: refused
    assert not switch.is_muted() and applied() == []
    muting.close()
    assert pin.function == "input"
