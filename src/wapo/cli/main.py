"""``wapo``: one subcommand per module; this file only routes."""

from __future__ import annotations

import argparse
import sys

from . import (build_cmd, call_cmd, cluster_cmd, cron_cmd, deploy_cmd, exec_cmd, logs_cmd, publish_cmd, secrets_cmd,
               serve_cmd)

COMMANDS = {
    "serve": serve_cmd, "publish": publish_cmd, "call": call_cmd, "secrets": secrets_cmd, "logs": logs_cmd,
    "exec": exec_cmd, "build": build_cmd,
    "deploy": deploy_cmd,
    "cluster": cluster_cmd,
    "cron": cron_cmd,
}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wapo", description="A serverless runtime for JavaScript agents on a WebAssembly host.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    if argv and argv[0] == "exec":
        return exec_cmd.main(argv[1:])  # its own parsing: script arguments may look like options
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
