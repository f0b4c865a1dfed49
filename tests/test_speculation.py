"""Short first steps on the event loop, on trust (wapo.host.speculation): a tenant earns it with
short, loop-free first steps; a speculative step that runs long or needs the loop is stopped and
the run starts again on a guest thread with nothing of the stopped step left (no output, no log
line, no answer twice). Real wasmtime, the real WapoJS guest."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import pytest

from wapo.agent.runner import AgentRequest, AgentResult, call_agent
from wapo.host import Limits
from wapo.host.speculation import STREAK, speculation
from wapo.host.threads import guest_threads
from wapo.js.sandbox import snapshots_enabled


@pytest.fixture(autouse=True)
def _threads(request) -> None:
    if request.node.name.startswith("test_a_tenant_that_keeps"):
        return  # the policy alone
    if guest_threads() is None:
        pytest.skip("guests run on the loop itself (WAPO_GUEST_THREADS=0): nothing to speculate")
    if not speculation().enabled:
        pytest.skip("WAPO_SPECULATE=0")
    if not snapshots_enabled():
        pytest.skip("WAPO_SNAPSHOT=0: a first step builds the JS runtime (milliseconds), never short")


@pytest.fixture
def wide_budget(monkeypatch) -> None:
    """A speculative step's budget of 5 s instead of one tick, for tests of the call rules: a tick
    (which stops a step of a few ms often on a loaded machine) must not stop it first."""
    import wapo.host.instance as instance

    monkeypatch.setattr(instance, "BUDGET_TICKS", 500)


SHORT_AGENT = """async function main(request) {
  console.log("short");
  return JSON.stringify({status: 200, headers: {}, body: "short"});
}"""


async def _earn(tenant: str) -> None:
    """Run a short agent as ``tenant`` until its first steps run on the loop (the process-wide
    budget of stops, which earlier tests spend, refills meanwhile)."""
    for _ in range(STREAK):
        result = await call_agent(SHORT_AGENT, AgentRequest(), tenant=tenant)
        assert result.response is not None and result.response.body == b"short", result.error
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # a first step that took long (a loaded machine) restarts the streak
        if speculation().allowed(tenant):
            return
        await call_agent(SHORT_AGENT, AgentRequest(), tenant=tenant)
        await asyncio.sleep(0.02)
    raise AssertionError(f"{tenant} never earned speculation")


async def _loop_gap_during(coro) -> tuple[object, float]:
    """Await ``coro`` while a 1 ms ticker runs on the loop; (its result, the ticker's longest wait)."""
    gaps: list[float] = []
    done = False

    async def ticker() -> None:
        last = time.monotonic()
        while not done:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    result = await coro
    done = True
    await tick
    return result, max(gaps)


@dataclass
class EarnedRun:
    tenant: str
    result: AgentResult
    stops: int  # speculative steps stopped while it ran
    why: str  # why the last one was
    gap: float  # the loop's longest wait meanwhile (a 1 ms ticker's)


async def _earned_run(name: str, code: str, **settings) -> EarnedRun:
    """Earn the loop as a new tenant, then run ``code`` once as it."""
    tenant = f"{name}-{uuid.uuid4()}"
    await _earn(tenant)
    ended = speculation().ended
    result, gap = await _loop_gap_during(call_agent(code, AgentRequest(), tenant=tenant, **settings))
    return EarnedRun(tenant, result, speculation().ended - ended, speculation().last_stop, gap)


def test_a_tenant_earns_the_loop_with_short_first_steps() -> None:
    async def scenario() -> tuple[int, int]:
        tenant = f"earn-{uuid.uuid4()}"
        assert not speculation().allowed(tenant)  # a new tenant runs on the guest threads first
        await _earn(tenant)
        ran = speculation().ran
        for _ in range(3):  # a tick may stop one, a cold first one ends the streak: each reruns on a thread
            result = await call_agent(SHORT_AGENT, AgentRequest(), tenant=tenant)
            assert result.response is not None and result.response.body == b"short"
            assert [r.message for r in result.logs] == ["short"]
        return ran, speculation().ran

    before, after = asyncio.run(scenario())
    assert after >= before + 1, "no earned run ran on the loop"


def test_a_step_that_needs_the_loop_starts_over_with_nothing_left_behind(wide_budget) -> None:
    """The agent logs and makes its answer's first part, then waits on a timer (a call that needs
    the loop): the speculative step stops there, and the run on a guest thread gives one answer
    and each log line once."""
    agent = """async function main(request) {
      console.log("before");
      const head = "a".repeat(10);
      await new Promise(r => setTimeout(r, 1));
      console.log("after");
      return JSON.stringify({status: 200, headers: {}, body: head + "b"});
    }"""

    run = asyncio.run(_earned_run("loop", agent))
    assert run.result.response is not None and run.result.response.body == b"a" * 10 + b"b", run.result.error
    assert [r.message for r in run.result.logs] == ["before", "after"]
    assert run.stops == 1 and "needs the event loop" in run.why
    assert not speculation().allowed(run.tenant)  # its streak is over, and the next one is longer


def test_a_streamed_answer_is_whole() -> None:
    """A style C agent (it watches its caller's cancel signal, a call that needs the loop, so its
    speculative step stops early) streams its body in two parts: the answer is each part once."""
    agent = """export default { async fetch(request) {
      let part = 0;
      const body = new ReadableStream({ async pull(c) {
        if (part++ === 0) { c.enqueue(new TextEncoder().encode("one,")); return; }
        await new Promise(r => setTimeout(r, 1));
        c.enqueue(new TextEncoder().encode("two"));
        c.close();
      }});
      return new Response(body, {status: 201});
    }};"""

    run = asyncio.run(_earned_run("stream", agent))
    assert run.result.response is not None, run.result.error
    assert (run.result.response.status, run.result.response.body) == (201, b"one,two")
    assert run.stops == 1


def test_listeners_see_nothing_of_a_stopped_step(wide_budget) -> None:
    """Log lines reach ``on_log`` as the run makes them; a speculative step's are held until it
    ends, and a stopped step's never reach it: each line is seen once, in order."""
    from wapo.js.sandbox import js_instance

    code = """
      console.log("one");
      await new Promise(r => setTimeout(r, 1));
      console.log("two");
      scriptOutput = "done";
    """

    async def scenario():
        tenant = f"listen-{uuid.uuid4()}"
        for _ in range(STREAK + 20):
            if speculation().allowed(tenant):
                break
            result = await js_instance('console.log("x"); scriptOutput = "x";', module=True, tenant=tenant).run()
            assert result.ok, result.error
        assert speculation().allowed(tenant)
        ended = speculation().ended
        seen: list[str] = []
        result = await js_instance(code, module=True, tenant=tenant, on_log=lambda r: seen.append(r.message)).run()
        return ended, result, seen

    ended, result, seen = asyncio.run(scenario())
    assert result.ok and result.output == b"done", result.error
    assert seen == ["one", "two"]
    assert speculation().ended == ended + 1


def test_a_long_step_is_stopped_and_the_loop_is_not_held() -> None:
    """A tenant that earned the loop with short steps then sends a 400 ms step: the loop runs it
    for at most the budget (one epoch tick) and a guest thread runs it to its answer; meanwhile the
    loop keeps turning (a 1 ms ticker on it never waits for the whole step)."""
    agent = """async function main(request) {
      const until = Date.now() + 400;
      let n = 0;
      while (Date.now() < until) n++;
      return JSON.stringify({status: 200, headers: {}, body: "long " + (n > 0)});
    }"""

    run = asyncio.run(_earned_run("long", agent, limits=Limits(burst=5.0)))
    assert run.result.response is not None and run.result.response.body == b"long true", run.result.error
    assert run.stops == 1 and "trapped" in run.why
    assert not speculation().allowed(run.tenant)
    # the whole step on the loop would hold it >= 400 ms; the budget is one 10 ms tick
    assert run.gap < 0.1, f"the loop was held {run.gap * 1000:.0f} ms"


def test_a_large_memory_never_runs_on_the_loop(wide_budget) -> None:
    """One wasm instruction (the zero-fill of a large typed array) runs past any epoch deadline,
    and a Store's drop takes time in proportion to its memory: a speculative Store gets a small
    memory limit, and a step that comes near it starts again on a guest thread with the run's
    own limit (an 80 MB array under the default limit)."""
    agent = """async function main(request) {
      const b = new Uint8Array(80e6);
      b[b.length - 1] = 7;
      return JSON.stringify({status: 200, headers: {}, body: "big " + b[b.length - 1]});
    }"""

    run = asyncio.run(_earned_run("mem", agent))
    assert run.result.response is not None and run.result.response.body == b"big 7", run.result.error
    assert run.stops == 1 and "memory" in run.why
    assert run.gap < 0.06, f"the loop was held {run.gap * 1000:.0f} ms"


def test_a_large_answer_is_made_on_a_guest_thread(wide_budget) -> None:
    """Output larger than a speculative step may write (its host work would be a copy of any
    size) stops it at the call; the answer comes whole from the guest thread's run."""
    agent = """async function main(request) {
      return JSON.stringify({status: 200, headers: {}, body: "x".repeat(300 * 1024)});
    }"""

    run = asyncio.run(_earned_run("out", agent))
    assert run.result.response is not None and run.result.response.body == b"x" * (300 * 1024), run.result.error
    assert run.stops == 1 and "host call" in run.why, run.why


def test_slow_host_work_never_runs_in_a_speculative_step(wide_budget) -> None:
    """The epoch deadline stops wasm, not the host: a host call that may run long whatever its
    payload (WebCrypto's PBKDF2 here, ~10^6 iterations) or reads a large payload (a 1 MiB hash)
    stops a speculative step before it starts; a guest thread runs it, and the loop keeps turning."""
    pbkdf2 = """async function main(request) {
      const key = await crypto.subtle.importKey("raw", new TextEncoder().encode("pw"), "PBKDF2", false, ["deriveBits"]);
      const bits = await crypto.subtle.deriveBits({name: "PBKDF2", hash: "SHA-256", salt: new Uint8Array(8),
                                                   iterations: 1500000}, key, 256);
      return JSON.stringify({status: 200, headers: {}, body: "bits " + new Uint8Array(bits).length});
    }"""
    big_hash = """async function main(request) {
      const d = await crypto.subtle.digest("SHA-256", new Uint8Array(1024 * 1024));
      return JSON.stringify({status: 200, headers: {}, body: "digest " + new Uint8Array(d).length});
    }"""

    for name, code, body in (("pbkdf2", pbkdf2, b"bits 32"), ("hash", big_hash, b"digest 32")):
        run = asyncio.run(_earned_run(name, code, limits=Limits(burst=10.0)))
        assert run.result.response is not None and run.result.response.body == body, (name, run.result.error)
        # the step stopped at the call itself (not at a tick before it): WebCrypto, a large payload
        assert run.stops == 1 and (("'subtle'" in run.why) if name == "pbkdf2" else ("host call" in run.why)), \
            (name, run.why)
        assert run.gap < 0.1, f"{name}: the loop was held {run.gap * 1000:.0f} ms"


def test_a_tenant_that_keeps_breaking_the_rule_needs_longer_streaks() -> None:
    """Each stopped speculation doubles the streak the tenant must show next (policy alone)."""
    from wapo.host.speculation import SHORT, Speculation

    policy = Speculation()
    for _ in range(STREAK):
        policy.record("t", SHORT / 10, loop_free=True)
    assert policy.allowed("t")
    policy.stopped("t", SHORT * 5, trapped=True, why="budget")  # ran past its budget
    assert not policy.allowed("t")
    for _ in range(2 * STREAK - 1):
        policy.record("t", SHORT / 10, loop_free=True)
    assert not policy.allowed("t")
    policy.record("t", SHORT / 10, loop_free=True)
    assert policy.allowed("t")
    policy.stopped("t", SHORT / 10, trapped=True, why="tick")  # the epoch ticked right after it began: free
    assert policy.allowed("t")
    policy.stopped("t", SHORT / 10, trapped=True, why="tick")  # twice in a row: not free
    assert not policy.allowed("t")
    for _ in range(4 * STREAK):
        policy.record("t", SHORT / 10, loop_free=True)
    assert policy.allowed("t")
    policy.stopped("t", SHORT / 10, trapped=False, why="a timer")  # it needed the loop: a cost
    assert not policy.allowed("t")
    policy.record("t", SHORT * 2, loop_free=True)  # a long first step on a thread ends any streak
    assert not policy.allowed("t")
    assert not Speculation(enabled=False).allowed("t")


def test_stops_are_bounded_process_wide() -> None:
    """New tenants cost nothing to make: past STOP_BUDGET costly stops in a moment, no tenant's
    first step runs on the loop until the budget refills."""
    from wapo.host.speculation import SHORT, STOP_BUDGET, Speculation

    policy = Speculation()
    tenants = [f"t{i}" for i in range(int(STOP_BUDGET) + 2)]
    for t in [*tenants, "good"]:
        for _ in range(STREAK):
            policy.record(t, SHORT / 10, loop_free=True)
    assert policy.allowed("good")
    for t in tenants[:int(STOP_BUDGET)]:
        policy.stopped(t, SHORT * 5, trapped=True, why="budget")
    assert not policy.allowed("good") and not policy.allowed(tenants[-1])
    time.sleep(1.5 / STOP_BUDGET)  # a stop's worth and more refilled
    assert policy.allowed("good")
