#!/usr/bin/env python3
"""Run the hostile-input and state-machine properties for a time budget and count the cases.

    .venv/bin/python scripts/fuzz.py --minutes 10        # fresh random cases, time shared out
    .venv/bin/python scripts/fuzz.py --as-tests          # exactly the budgets `make test` runs

The properties are those of tests/test_fuzz.py (tests/hostile_inputs.py) and
tests/test_machine_properties.py. A failure prints hypothesis's smallest failing case and
exits 1.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from hostile_inputs import PROPERTIES  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402
from test_fuzz import BUDGET  # noqa: E402
from test_machine_properties import MachinePromises  # noqa: E402

ROUND = 200  # examples per hypothesis run; runs repeat until the time share is used
MACHINE_STEPS = 60


def run_property(name: str, seconds: float | None) -> tuple[int, float]:
    """Run one property for `seconds` (None: its `make test` budget); (cases, seconds)."""
    prop = PROPERTIES[name]
    start, before = time.monotonic(), prop.cases
    with prop.context() as ctx:
        while True:
            examples = BUDGET[name] if seconds is None else ROUND

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=seconds is None,
                suppress_health_check=list(HealthCheck),
            )
            @given(prop.strategy)
            def run(case):
                prop.run(case, ctx)

            run()
            if seconds is None or time.monotonic() - start >= seconds:
                break
    return prop.cases - before, time.monotonic() - start


def run_machine(seconds: float | None) -> tuple[int, int, float]:
    """(state-machine runs, steps, seconds)."""
    start = time.monotonic()
    runs, steps = MachinePromises.runs, MachinePromises.steps
    while True:
        s = (
            MachinePromises.TestCase.settings
            if seconds is None
            else settings(
                max_examples=ROUND,
                stateful_step_count=MACHINE_STEPS,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
        )
        run_state_machine_as_test(MachinePromises, settings=s)
        if seconds is None or time.monotonic() - start >= seconds:
            break
    return MachinePromises.runs - runs, MachinePromises.steps - steps, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--minutes",
        type=float,
        default=1.0,
        help="total time budget, shared equally between the properties",
    )
    group.add_argument(
        "--as-tests",
        action="store_true",
        help="run the derandomized budgets of `make test` and count them",
    )
    parser.add_argument(
        "--only", nargs="+", choices=[*PROPERTIES, "machine"], help="run only these properties"
    )
    args = parser.parse_args()
    names = args.only or [*PROPERTIES, "machine"]
    share = None if args.as_tests else args.minutes * 60 / len(names)
    total = 0
    print(f"{'property':<12} {'cases':>9} {'seconds':>8}")
    for name in names:
        try:
            if name == "machine":
                runs, steps, secs = run_machine(share)
                print(f"{name:<12} {runs:>9} {secs:>8.1f}   ({steps} steps)", flush=True)
                total += runs
            else:
                cases, secs = run_property(name, share)
                print(f"{name:<12} {cases:>9} {secs:>8.1f}", flush=True)
                total += cases
        except Exception as e:  # with hypothesis's smallest failing cases in its notes
            traceback.print_exception(e)
            print(f"{name}: FAILED", file=sys.stderr)
            return 1
    print(f"{'total':<12} {total:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
