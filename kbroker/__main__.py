"""`kbroker [server.properties] [--override key=value ...]`, as kafka-server-start.sh.

Exit status: 0 after a graceful stop (SIGINT/SIGTERM), 1 when the configuration is
invalid (the message names the key) or the broker fails.
"""

from __future__ import annotations

import argparse
import logging
import sys

logger = logging.getLogger("kbroker")

LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kbroker", description="Run a Kafka-wire-compatible broker (kafka-server-start.sh style).")
    parser.add_argument("properties", nargs="?", help="a Kafka server.properties file")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="set a config key, overriding the file (repeatable)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level (INFO)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit status."""
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr)
    from kbroker.config import ConfigError, load_config

    try:
        config = load_config(args.properties, args.override)
    except ConfigError as exc:
        logger.error("%s", exc)  # names the key; the broker refuses to start
        return 1
    except (OSError, ValueError) as exc:
        logger.error("cannot read configuration: %s", exc)
        return 1

    import trio

    from kbroker.broker import Broker
    from kbroker.server import ListenerError, run_until_signalled

    try:
        trio.run(run_until_signalled, Broker(config))
    except KeyboardInterrupt:
        return 0
    except ListenerError as exc:
        logger.error("%s", exc)
        return 1
    except Exception:
        logger.exception("broker failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
