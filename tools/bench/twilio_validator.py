"""Times twilio-python's RequestValidator.validate on the status callback that
domain/benches/signature.rs times in Rust (tools/bench/status_callback.json).

Usage: tools/bench/.venv/bin/python tools/bench/twilio_validator.py [--number N] [--repeat R] [--raw]
Prints microseconds per validate() call (best of R runs of N calls); --raw prints the number alone.
"""

import argparse
import json
import pathlib
import sys
import timeit

import twilio
from twilio.request_validator import RequestValidator

CASE = pathlib.Path(__file__).with_name("status_callback.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the fastest counts")
    parser.add_argument("--raw", action="store_true", help="print only microseconds per call")
    args = parser.parse_args()

    case = json.loads(CASE.read_text(encoding="utf-8"))
    validator = RequestValidator(case["auth_token"])
    # A status callback has no repeated names, so a dict is what a Flask/Django app hands over
    # (both getall() and the dict fallback end up with one value per name).
    params = dict(case["params"])
    url, signature = case["url"], case["signature"]
    if not validator.validate(url, params, signature):
        print("twilio-python rejects the shared case: inputs differ from the Rust bench", file=sys.stderr)
        return 1

    runs = timeit.repeat(
        lambda: validator.validate(url, params, signature),
        number=args.number,
        repeat=args.repeat,
    )
    micros = min(runs) / args.number * 1e6
    if args.raw:
        print(f"{micros:.3f}")
    else:
        print(
            f"twilio-python {twilio.__version__} RequestValidator.validate, status callback "
            f"(10 params): {micros:.3f} us/call (best of {args.repeat} x {args.number})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
