"""``wapo exec FILE [args]``: run a JS script or a wasm guest once, locally."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

from ..host import GuestModule, Instance, Limits, LogRecord, RunResult, WapoError
from . import bundling
from .flags import limit_arguments, limits_from, listen_arguments, network_from

WASM_MAGIC = b"\0asm"
def _parser(prog: str = "wapo exec") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Run a JavaScript file (or a .wasm guest of the Wapo ABI) in a fresh sandbox. "
        "The program's output goes to stdout, its logs to stderr; the exit status is 1 if it fails. "
        "Arguments after FILE reach the script as scriptArgs (put them after -- if they look like options).")
    p.add_argument("file", metavar="FILE", nargs="?", help="a .js script, or a .wasm module exporting wapo_poll")
    p.add_argument("args", nargs="*", metavar="ARG", help="script arguments")
    limit_arguments(p)
    listen_arguments(p)
    p.add_argument("--module", action="store_true", help="evaluate the script as an ES module (default for .mjs)")
    p.add_argument("--trace", action="store_true", help="log every ocall of a wasm guest")
    return p


def add_parser(sub: argparse._SubParsersAction) -> None:
    model = _parser()
    sub.add_parser("exec", help="run a JS file or a wasm guest once", parents=[model], add_help=False,
                   description=model.description)


def _option_names() -> tuple[set[str], set[str]]:
    """The parser's options that take a value, and those that do not (a flag added to the parser
    is known here without a second list)."""
    value: set[str] = set()
    flag: set[str] = set()
    for action in _parser()._actions:
        (flag if action.nargs == 0 else value).update(action.option_strings)
    return value, flag


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our options may come before or after FILE; everything else after FILE is the script's."""
    value_options, flag_options = _option_names()
    ours: list[str] = []
    script: list[str] = []
    seen_file = False
    i = 0
    while i < len(argv):
        tok = argv[i]
        name = tok.split("=", 1)[0]
        if tok == "--":
            script += argv[i + 1:]
            break
        if name in value_options:
            take = 1 if "=" in tok else 2
            ours += argv[i:i + take]
            i += take
            continue
        if tok in flag_options:
            ours.append(tok)
        elif not seen_file:
            ours.append(tok)
            seen_file = True
        else:
            script.append(tok)
        i += 1
    return ours, script


def print_log(record: LogRecord) -> None:
    prefix = "" if record.level == "info" else f"[{record.level}] "
    print(prefix + record.message, file=sys.stderr, flush=True)


USAGE_HINT = ("wapo exec: give a FILE to run: a .js script (it answers by setting scriptOutput), an ES module "
              "(.mjs, or --module), or a .wasm guest of the Wapo ABI; arguments after FILE reach it as "
              "scriptArgs. E.g. `wapo exec script.js hello`. To run an agent with a request, use `wapo call FILE`.")
MODULE_HINT = ("wapo exec: this looks like an ES module (import/export): run it with `wapo exec --module {file}`, "
               "or, if it is an agent (export default {{ fetch }}), with `wapo call {file}`")


def _module_syntax_error(result: RunResult) -> bool:
    """A script evaluated as a classic script failed on import/export syntax."""
    text = result.error.describe() if result.error is not None else ""
    return "SyntaxError" in text and ("keyword: export" in text or "keyword: import" in text
                                      or "import statement" in text or "export statement" in text)


def main(argv: list[str]) -> int:
    ours, script_args = split_argv(argv)
    parser = _parser()
    args = parser.parse_args(ours)
    if args.file is None:
        parser.print_usage(sys.stderr)
        print(USAGE_HINT, file=sys.stderr)
        return 2
    try:
        limits = limits_from(args)
        args.network = network_from(args)
        if args.ws_max_message is not None:
            from ..host.net.websocket import set_max_message_size
            set_max_message_size(args.ws_max_message)
    except ValueError as exc:
        parser.error(str(exc))
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"wapo exec: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(_run(path, data, script_args, limits, args))
    except WapoError as exc:
        print(f"wapo exec: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(result.output)
    sys.stdout.flush()
    if not result.ok and not args.module and path.suffix not in (".mjs", ".wasm", ".wat") \
            and _module_syntax_error(result):
        print(MODULE_HINT.format(file=path), file=sys.stderr)
    return 0 if result.ok else 1


async def _run(path: Path, data: bytes, script_args: list[str], limits: Limits,
               args: argparse.Namespace) -> RunResult:
    if data.startswith(WASM_MAGIC) or path.suffix in (".wasm", ".wat"):
        instance = Instance(GuestModule(data, name=path.name), args=script_args, limits=limits,
                            inherit_stdio=True, on_log=print_log,
                            network=args.network)
        if args.trace:
            instance._require_state().trace = True
        return await instance.run()
    from ..js.runner import js_instance
    try:
        code = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WapoError(f"{path} is neither a wasm module nor UTF-8 JavaScript") from exc
    module = args.module or path.suffix == ".mjs"
    name, on_log = path.name, print_log
    if path.suffix in bundling.TS_SUFFIXES:  # TypeScript: bundled (esbuild), errors mapped back to the .ts
        try:
            built = bundling.bundle(path, name=path.stem + ".bundle.js")
        except bundling.BundleError as exc:
            raise WapoError(str(exc)) from None
        code, name, module = built.code.decode("utf-8"), built.name, True
        mapped = bundling.stack_mapper(built.source_map, built.name)

        def on_log(record: LogRecord) -> None:
            print_log(record if record.level != "error" else replace(record, message=mapped(record.message)))
    instance = js_instance(code, script_args, limits=limits, module=module, name=name, on_log=on_log,
                           network=args.network)
    return await instance.run()
