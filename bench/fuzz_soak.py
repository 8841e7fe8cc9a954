"""Fuzz soak: the strategies of tests/test_fuzz.py for many more examples.

usage: python bench/fuzz_soak.py [examples=2000] [--seed N] [--hang-seconds S]

Prints the number of calls, errors by type and elapsed time; exits non-zero on any unexpected
exception (anything but KtorchError/TypeError, a PanicException included), on a live-handle
leak, and (via faulthandler) on a hang.
"""

import argparse
import faulthandler
import os
import sys
import time
import traceback
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import test_fuzz  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("examples", nargs="?", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=None, help="fixed Hypothesis seed (default random)")
    ap.add_argument("--hang-seconds", type=float, default=120, help="an example running longer is a hang")
    ap.add_argument("--no-objects", action="store_true", help="skip the live-handle count check")
    args = ap.parse_args()

    stats = Counter()
    failures = []

    @settings(max_examples=args.examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(test_fuzz.programs)
    def soak(program):
        faulthandler.dump_traceback_later(args.hang_seconds, exit=True)
        try:
            stats["examples"] += 1
            test_fuzz.execute(program, stats, check_objects=not args.no_objects)
        finally:
            faulthandler.cancel_dump_traceback_later()

    if args.seed is not None:
        soak = seed(args.seed)(soak)
    t0 = time.monotonic()
    try:
        soak()
    except BaseException as e:  # noqa: BLE001  (report whatever escaped, then fail)
        failures.append(e)
        traceback.print_exc()
    dt = time.monotonic() - t0
    print(f"examples: {stats.pop('examples', 0)}  calls: {stats.pop('calls', 0)}  ok: {stats.pop('ok', 0)}  "
          f"elapsed: {dt:.1f}s")
    for k, v in sorted(stats.items()):
        print(f"  {k}: {v}")
    if failures:
        print(f"FAILED: {type(failures[0]).__name__}: {failures[0]}", file=sys.stderr)
        return 1
    print("no unexpected exceptions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
