"""Every parser of outside input, fuzzed: WAV files, config files, the model manifest, the
recordings directory (sidecars, links, odd files) and the control protocol.

The cases are in tests/hostile_inputs.py; here each property runs a bounded, derandomized
budget (the same cases on every run). `scripts/fuzz.py --minutes N` runs them for longer with
fresh random cases.
"""

from __future__ import annotations

import pytest
from hostile_inputs import PROPERTIES
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.fuzz  # `make test-fast` leaves the property budgets out

BUDGET = {"wav": 1000, "config": 300, "manifest": 500, "recordings": 200, "control": 600}


def make_test(name: str):
    prop = PROPERTIES[name]

    def test() -> None:
        with prop.context() as ctx:

            @settings(
                max_examples=BUDGET[name],
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(prop.strategy)
            def run(case):
                prop.run(case, ctx)

            before = prop.cases
            run()
            assert prop.cases - before >= BUDGET[name] // 2  # the cases did run

    return test


@pytest.mark.parametrize("name", sorted(BUDGET))
def test_hostile_input(name):
    make_test(name)()
