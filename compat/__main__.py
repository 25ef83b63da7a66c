"""`python -m compat --bootstrap HOST:PORT [--clients a,b] [--only PATTERN] [--report FILE]`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from compat.broker import local_kbroker
from compat.clients import CLIENT_NAMES
from compat.known import KNOWN_GAPS_FILE, KnownGaps
from compat.runner import run, write_report


def main(argv: list[str] | None = None) -> int:
    """Run the compatibility matrix; exit status 1 on any FAIL, ERROR or XPASS."""
    parser = argparse.ArgumentParser(prog="python -m compat", description=__doc__)
    parser.add_argument("--bootstrap", help="HOST:PORT of the broker; default: start a kbroker")
    parser.add_argument("--clients", default=",".join(CLIENT_NAMES),
                        help=f"comma-separated subset of {','.join(CLIENT_NAMES)}")
    parser.add_argument("--only", help="scenario filter: shell pattern(s) or substring, comma-separated, "
                                       "matched against 'client:scenario' and 'scenario'")
    parser.add_argument("--report", help="write the results to FILE.md or FILE.json")
    parser.add_argument("--known-gaps", default=str(KNOWN_GAPS_FILE),
                        help="file of expected failures (client:scenario reason); default compat/known_gaps")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.verbose:
        # client libraries log every broker disconnect at ERROR; the result lines say what matters
        for noisy in ("kafka", "aiokafka", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = [c for c in clients if c not in CLIENT_NAMES]
    if unknown:
        parser.error(f"unknown client(s) {', '.join(unknown)}; known: {', '.join(CLIENT_NAMES)}")
    with contextlib.ExitStack() as stack:
        bootstrap = args.bootstrap or stack.enter_context(local_kbroker())
        print(f"compat: broker {bootstrap}", flush=True)
        report = run(bootstrap, clients, args.only, gaps=KnownGaps.load(Path(args.known_gaps)), out=sys.stdout)
    if not report.results:
        print("compat: no scenario matched", flush=True)
        return 1
    print(report.summary(), flush=True)
    if args.report:
        write_report(report, args.report)
    return 0 if report.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
