"""``wapo dev [DIR|FILE]``: serve an agent on 127.0.0.1 with the production limits, rebuild it on
change, print each request and each error (with its source-mapped stack) and warn near limits."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path

from .flags import data_dir_argument, limit_arguments, limits_from, network_from

DEFAULT_PORT = 8787


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dev", help="serve an agent locally, rebuilding it on change",
                       description="Build the agent (a project folder, a .ts file or a .js file; bundled with "
                                   "esbuild when it needs it), serve it at http://HOST:PORT/ and at /ipfs/<cid> of "
                                   "the current build, with the gateway's production limits, and rebuild when a "
                                   "source changes. Every request is printed (method, path, status, duration, "
                                   "request id), every error with its source-mapped stack, and a warning when a "
                                   "run comes within 80% of a limit.")
    p.add_argument("target", type=Path, nargs="?", default=Path("."), metavar="DIR_OR_FILE")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT} (0: any free port)")
    p.add_argument("--no-watch", action="store_true", help="build once, do not rebuild on change")
    p.add_argument("--debug", action="store_true", help="agents' errors in their 500 answers too")
    data_dir_argument(p)
    p.set_defaults(data_dir=None)
    limit_arguments(p)
    p.set_defaults(parser=p)


def run(args: argparse.Namespace) -> int:
    try:
        limits = limits_from(args)
        network = network_from(args)
    except ValueError as exc:
        args.parser.error(str(exc))
    if not args.target.exists():
        print(f"wapo dev: {args.target} does not exist: give a project folder (`wapo init` makes one) or an "
              "agent file", file=sys.stderr)
        return 2
    if args.data_dir is not None:
        return _serve(args, args.data_dir, limits, network)
    with tempfile.TemporaryDirectory(prefix="wapo-dev-") as tmp:
        return _serve(args, Path(tmp), limits, network)


def _serve(args: argparse.Namespace, data_dir: Path, limits, network) -> int:
    from ..gateway.config import GatewayConfig
    from ..js.runner import wapojs_module
    from ..store import Store
    from .dev import BuildFailed, build_into
    wapojs_module()  # build or load the guest before serving
    config = GatewayConfig(host=args.host, port=args.port, data_dir=data_dir, limits=limits, debug=args.debug,
                           allow_addresses=tuple(str(n) for n in network.allow))
    store = Store(data_dir)
    try:
        first = build_into(args.target, store)
    except BuildFailed as exc:
        print(f"wapo dev: the first build failed: {exc}", file=sys.stderr)
        store.close()
        return 1
    try:
        return asyncio.run(_main(args, config, store, first))
    finally:
        store.close()


async def _main(args: argparse.Namespace, config, store, first) -> int:
    from aiohttp import web
    from ..gateway.app import make_app
    from ..gateway.agents import serve_agent
    from ..gateway.context import RUN_OBSERVER
    from ..gateway.server import GatewayRunner
    from .dev import BuildFailed, build_into, run_reporter, watch_filter, watch_root
    current = {"build": first}

    async def serve_current(request: web.Request) -> web.StreamResponse:
        return await serve_agent(request, current["build"].cid, "/" + request.match_info.get("path", ""))

    app = make_app(config, store)
    app[RUN_OBSERVER] = run_reporter(config.limits_for)
    app.router.add_route("*", "/{path:.*}", serve_current)  # after the gateway's routes: the fallback
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError as exc:
        print(f"wapo dev: cannot listen on {config.host}:{config.port}: {exc.strerror} (try --port)", file=sys.stderr)
        await runner.cleanup()
        return 1
    port = runner.addresses[0][1]
    host = config.host if ":" not in config.host else f"[{config.host}]"
    base = f"http://{host}:{port}"

    def announce(build, what: str) -> None:
        kind = "bundled, source-mapped" if build.bundled else "as is"
        print(f"wapo dev: {what} {build.cid} ({build.size} bytes, {kind}, {build.seconds * 1000:.0f} ms): "
              f"{base}/ and {base}/ipfs/{build.cid}", flush=True)

    print(f"wapo dev: serving {args.target} on {base} (limits: memory {config.limits.memory / 1e6:.0f}MB, "
          f"burst {config.limits.burst:g} s, time {config.limits.time:g} s)", flush=True)
    announce(first, "built")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = None
    if not args.no_watch:
        import watchfiles

        async def watch() -> None:
            async for _ in watchfiles.awatch(watch_root(args.target), watch_filter=watch_filter, stop_event=stop,
                                             debounce=200, step=50):
                try:
                    build = await asyncio.to_thread(build_into, args.target, store)
                except BuildFailed as exc:
                    print(f"wapo dev: rebuild failed (still serving {current['build'].cid}):\n{exc}", flush=True)
                    continue
                if build.cid != current["build"].cid:
                    current["build"] = build
                    announce(build, "rebuilt")
        watcher = asyncio.create_task(watch())
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        await runner.cleanup()
    return 0
