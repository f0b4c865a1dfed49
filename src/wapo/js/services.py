"""Host services that only make sense for WapoJS guests: ``Wapo.run`` and ``Wapo.version``.

They live in the JS layer (the host layer never imports JavaScript code) and
register themselves in the host's service registry when this module is
imported (``wapo.js.runner`` imports it).

``wapojs.run`` starts ``code`` in a separate, fresh WapoJS sandbox as an
asyncio task and returns the id of a ``FutureResource`` the caller watches;
``wapojs.runResult`` then returns the finished run as JSON. The inner run's
limits are capped by the outer run's:

- time: ``timeLimit`` (ms) but never more than the time the outer run has
  left (the outer run's whole time limit if it has none left to measure);
- memory: ``memoryLimit`` (bytes) but never more than the outer run's limit,
  and at least ``MIN_MEMORY`` (a smaller heap cannot even start the engine);
- gas: ``gasLimit`` (gas units; 1 gas = 1024 wasm fuel units, as the
  app_gas_consumed ocall counts) but never more than the outer run's fuel;
  without either there is no metering;
- burst: the outer run's burst limit.

The inner run also gets the outer run's network policy and data directory
(so ``Wapo.deriveSecret`` uses the same node key; the app address is the
inner code's own).

At most ``MAX_CONCURRENT`` inner sandboxes of one top-level run (counting every
nesting level) are alive at once, so a run holds at most that many extra
sandboxes' memory; runs nest at most ``MAX_DEPTH`` levels deep. An inner run is cancelled when the
outer run ends or closes the resource.
"""

from __future__ import annotations

import asyncio
import json
import struct
import weakref
from typing import TYPE_CHECKING

from .._version import __version__
from ..host.abi import OcallError
from ..host.limits import MIB, Limits
from ..host.options import RunOptions
from ..host.resources import FutureResource
from ..host.services import ServiceError, service
from .sandbox import ScriptError, js_instance

if TYPE_CHECKING:
    from ..host.state import GuestState
    from ..host.instance import Instance, RunResult

MIN_MEMORY = 8 * MIB
MAX_CONCURRENT = 4
MAX_DEPTH = 4
FUEL_PER_GAS = 1024

# nesting depth and top-level run of the sandboxes started by Wapo.run (absent: a top-level run)
_depth: "weakref.WeakKeyDictionary[Instance, int]" = weakref.WeakKeyDictionary()
_root: "weakref.WeakKeyDictionary[Instance, Instance]" = weakref.WeakKeyDictionary()
# live inner sandboxes per top-level run
_live: "weakref.WeakKeyDictionary[Instance, int]" = weakref.WeakKeyDictionary()


class _Run(FutureResource):
    kind = "Wapo.run"

    def __init__(self, task: asyncio.Task, owner: GuestState) -> None:
        super().__init__(task)
        self.owner = owner


def _positive(options: dict, key: str) -> float | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value <= 0:
        raise ServiceError("TypeError", f"Wapo.run: {key} must be a positive number")
    return float(value)


def inner_limits(outer_limits: Limits, elapsed: float, options: dict) -> Limits:
    """The limits of a nested run: what it asks for, capped by what the outer run (running for
    ``elapsed`` seconds so far) has."""
    time_limit = outer_limits.time
    if outer_limits.time:
        time_limit = max(outer_limits.time - elapsed, 0.001)
    asked = _positive(options, "timeLimit")
    if asked is not None:
        time_limit = min(time_limit, asked / 1000) if time_limit else asked / 1000

    memory = outer_limits.memory
    asked = _positive(options, "memoryLimit")
    if asked is not None:
        memory = min(memory, int(asked))
    memory = max(memory, min(MIN_MEMORY, outer_limits.memory))

    fuel = outer_limits.fuel
    asked = _positive(options, "gasLimit")
    if asked is not None:
        wanted = int(asked * FUEL_PER_GAS)
        fuel = min(fuel, wanted) if fuel is not None else wanted
    return outer_limits.with_(time=time_limit, memory=memory, fuel=fuel)


def _strings(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ServiceError("TypeError", f"Wapo.run: {what} must be an array of strings")
    return value


@service("wapojs.run")
def run(st: GuestState, payload: bytes) -> bytes:
    """payload: JSON {code, args, env, timeLimit, gasLimit, memoryLimit} -> u32 resource id."""

    try:
        request = json.loads(payload)
    except ValueError:
        raise ServiceError("TypeError", "Wapo.run: bad request") from None
    if not isinstance(request, dict) or not isinstance(request.get("code"), str):
        raise ServiceError("TypeError", "Wapo.run: code must be a string")
    args = _strings(request.get("args"), "args")
    env_obj = request.get("env") or {}
    if not isinstance(env_obj, dict) or not all(isinstance(v, str) for v in env_obj.values()):
        raise ServiceError("TypeError", "Wapo.run: env must be an object of strings")
    env = [(str(k), v) for k, v in env_obj.items()]
    if any("\0" in k or "=" in k or "\0" in v for k, v in env):
        raise ServiceError("TypeError", "Wapo.run: env names cannot contain '=' or NUL, values no NUL")

    outer = st.owner()
    if outer is None:
        raise ServiceError("Error", "Wapo.run: the calling run is ending")
    depth = _depth.get(outer, 0) + 1
    if depth > MAX_DEPTH:
        raise ServiceError("RangeError", f"Wapo.run nests at most {MAX_DEPTH} levels deep")
    root = _root.get(outer, outer)
    if _live.get(root, 0) >= MAX_CONCURRENT:
        raise ServiceError("RangeError", f"at most {MAX_CONCURRENT} Wapo.run sandboxes can run at once")
    limits = inner_limits(st.limits, outer.elapsed, request)
    # the same network policy and data directory (node key); the app address is the inner code's own
    options = RunOptions(limits=limits, env=tuple(env), data_dir=st.options.data_dir, network=st.network)
    try:
        inner = js_instance(request["code"], args, options=options,
                            name=request.get("name") if isinstance(request.get("name"), str) else None)
    except ScriptError as exc:
        raise ServiceError("TypeError", f"Wapo.run: {exc}") from None
    _depth[inner] = depth
    _root[inner] = root
    _live[root] = _live.get(root, 0) + 1

    def finished(task: asyncio.Task) -> None:
        _live[root] = max(_live.get(root, 1) - 1, 0)
        if not task.cancelled():
            task.exception()  # retrieved here so asyncio does not warn; runResult reports it

    task = st.loop.create_task(inner.run())
    task.add_done_callback(finished)
    try:
        rid = st.resources.add(_Run(task, st))  # at the resource limit, this cancels the task
    except OcallError as exc:
        raise ServiceError("RangeError", f"Wapo.run: {exc}") from None
    return struct.pack("<I", rid)


def result_json(result: RunResult) -> bytes:
    error = result.error
    logs = [{"message": r.message, "level": r.level, "time": r.time * 1000} for r in result.logs]
    return json.dumps({
        "isOk": error is None,
        "isError": error is not None,
        "error": error.message if error is not None else None,
        "errorKind": error.kind if error is not None else None,
        "errorStack": error.stack if error is not None else None,
        "value": result.output.decode("utf-8", "replace"),
        "output": result.output.hex(),
        "logs": logs,
        "duration": result.duration * 1000,
    }).encode()


@service("wapojs.runResult")
def run_result(st: GuestState, payload: bytes) -> bytes:
    """payload: u32 resource id of a finished ``wapojs.run`` -> the run as JSON."""
    if len(payload) != 4:
        raise ServiceError("TypeError", "wapojs.runResult: expected a u32 resource id")
    (rid,) = struct.unpack("<I", payload)
    try:
        res = st.resources.get_as(rid, _Run)
    except OcallError:
        raise ServiceError("TypeError", f"no Wapo.run resource {rid}") from None
    assert isinstance(res, _Run)
    task = res.future
    if not task.done():
        raise ServiceError("Error", "Wapo.run has not finished")
    if task.cancelled():
        raise ServiceError("Error", "Wapo.run was cancelled")
    exc = task.exception()
    if exc is not None:  # the run could not start (e.g. a bad module): report it as the run's error
        return json.dumps({"isOk": False, "isError": True, "error": str(exc), "errorKind": "host_error",
                           "errorStack": "", "value": "", "output": "", "logs": [], "duration": 0}).encode()
    return result_json(task.result())


@service("wapojs.version", inline=True, quick=True)
def version(st: GuestState, payload: bytes) -> bytes:
    return __version__.encode()
