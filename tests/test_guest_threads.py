"""GuestThreads: steps on worker threads, round-robin over tenants, a per-tenant share."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from wapo.host.threads import GuestThreads, threads_from_env


def test_a_tenant_holds_at_most_its_share_while_others_run() -> None:
    pool = GuestThreads(4, per_tenant=2)
    gate = threading.Event()
    lock = threading.Lock()
    running = {"a": 0, "max_a": 0}

    def hog() -> str:
        with lock:
            running["a"] += 1
            running["max_a"] = max(running["max_a"], running["a"])
        gate.wait(10)
        with lock:
            running["a"] -= 1
        return "a"

    hogs = [pool.submit("a", hog) for _ in range(6)]
    other = pool.submit("b", lambda: "b")
    assert other.result(timeout=10) == "b"  # while a's steps wait behind its share
    assert running["max_a"] == 2 and not any(f.done() for f in hogs)
    gate.set()
    assert [f.result(timeout=10) for f in hogs] == ["a"] * 6
    assert running["max_a"] == 2
    assert pool.stats()["running"] == 0 and pool.stats()["waiting"] == 0


def test_tenants_take_turns() -> None:
    pool = GuestThreads(1)
    gate = threading.Event()
    order: list[str] = []
    first = pool.submit("a", lambda: gate.wait(10))  # holds the only thread
    time.sleep(0.05)
    steps = [pool.submit("a", lambda i=i: order.append(f"a{i}")) for i in range(3)]
    steps.append(pool.submit("b", lambda: order.append("b")))
    gate.set()
    for f in [first, *steps]:
        f.result(timeout=10)
    assert order.index("b") < order.index("a2"), order  # b did not wait for all of a's steps


def test_errors_reach_the_awaiting_side_and_cancelled_steps_do_not_run() -> None:
    pool = GuestThreads(1)
    gate = threading.Event()
    ran = []
    blocker = pool.submit("a", lambda: gate.wait(10))
    cancelled = pool.submit("a", lambda: ran.append("cancelled"))
    assert cancelled.cancel()
    failing = pool.submit("b", lambda: 1 / 0)
    gate.set()
    blocker.result(timeout=10)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=10)
    assert pool.submit("a", lambda: "after").result(timeout=10) == "after"
    assert ran == []


def test_run_awaits_a_step() -> None:
    pool = GuestThreads(2)

    async def main() -> tuple[str, bool]:
        loop_thread = threading.get_ident()
        name = await pool.run("t", lambda: threading.current_thread().name)
        other = await pool.run("t", lambda: threading.get_ident() != loop_thread)
        return name, other

    name, other = asyncio.run(main())
    assert name.startswith("wapo-guest-") and other


@pytest.mark.parametrize("text, expected", [("", 4 * (os.cpu_count() or 1)), ("0", 0), ("3", 3)])
def test_the_environment_setting(monkeypatch, text, expected) -> None:
    monkeypatch.setenv("WAPO_GUEST_THREADS", text)
    assert threads_from_env() == expected


@pytest.mark.parametrize("text", ["-1", "many", "2000"])
def test_a_bad_environment_setting_names_the_variable(monkeypatch, text) -> None:
    monkeypatch.setenv("WAPO_GUEST_THREADS", text)
    with pytest.raises(ValueError, match="WAPO_GUEST_THREADS"):
        threads_from_env()


def test_a_step_hands_what_it_wrote_to_the_loop_past_a_bound() -> None:
    """Log lines of a step wait for the step's end, but not past DEFERRED_BYTES: a step that logs 4 MiB,
    then computes, has its first lines on the loop while it still runs (unbounded, a flooding step held
    everything it wrote: gigabytes in bench/soak.py). Lines stay in order either way."""
    from wapo.host import Limits
    from wapo.host.options import RunOptions
    from wapo.host.state import DEFERRED_BYTES
    from wapo.host.threads import guest_threads
    from wapo.js.sandbox import js_instance

    if guest_threads() is None:
        pytest.skip("guests run on the loop itself (WAPO_GUEST_THREADS=0): nothing is deferred")
    seen: list[tuple[int, bool]] = []  # (line number, its step still running)
    inst = None

    def on_log(record) -> None:
        if "dropped" in record.message[:100]:
            return  # the host's closing line about the run's log caps
        step = inst._in_step
        seen.append((int(record.message.split(" ", 1)[0]), step is not None and not step.done()))

    code = f"""
        const line = "x".repeat(64 * 1024);
        for (let i = 0; i < {4 * DEFERRED_BYTES // (64 * 1024)}; i++) console.log(i + " " + line);
        const until = Date.now() + 300;
        while (Date.now() < until) {{}}
        scriptOutput = "done";
    """
    inst = js_instance(code, options=RunOptions(limits=Limits(burst=5.0, max_log_bytes=8 * DEFERRED_BYTES),
                                                     on_log=on_log))
    result = asyncio.run(inst.run())
    assert result.ok and result.output == b"done", result.error
    numbers = [n for n, _ in seen]
    assert numbers == sorted(numbers) and len(numbers) == 4 * DEFERRED_BYTES // (64 * 1024)
    assert any(running for _, running in seen), "every line waited for the step's end"


def test_many_awaited_steps_arrive_in_batches_each_with_its_own_outcome() -> None:
    """Finished steps reach the loop in batches: every awaiting side gets its own result or error,
    with fewer loop wake-ups than steps."""
    pool = GuestThreads(4)

    def step(i: int) -> int:
        if i % 7 == 0:
            raise ValueError(f"step {i}")
        return i * i

    async def main() -> list:
        return await asyncio.gather(*(pool.run(f"t{i % 3}", lambda i=i: step(i)) for i in range(300)),
                                    return_exceptions=True)

    results = asyncio.run(main())
    for i, got in enumerate(results):
        if i % 7 == 0:
            assert isinstance(got, ValueError) and str(got) == f"step {i}"
        else:
            assert got == i * i
    assert pool.wakeups <= pool.handoffs == 300
    assert pool.stats()["running"] == 0 and pool.stats()["waiting"] == 0


def test_a_step_of_a_closed_loop_does_not_stop_its_thread() -> None:
    pool = GuestThreads(1)
    gate = threading.Event()
    loop = asyncio.new_event_loop()
    pool.start("a", lambda: gate.wait(10), loop.create_future())
    loop.close()  # nobody is left to deliver to
    gate.set()
    assert pool.submit("a", lambda: "still running").result(timeout=10) == "still running"


def test_instantiation_keeps_the_gil_only_for_modules_without_a_start_function() -> None:
    import wasmtime
    from wapo.host.module import has_start_function

    assert has_start_function(wasmtime.wat2wasm("(module (func $f) (start $f))"))
    assert not has_start_function(wasmtime.wat2wasm("(module (func $f) (memory 1))"))
    assert has_start_function(b"(module)")  # text, or anything not read as a binary: assume one
    assert has_start_function(b"\0asm\1\0\0\0\x01\xff")  # a truncated section size
