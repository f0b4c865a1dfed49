"""What an agent answers, read from its output in whichever style it used."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import msgpack

# Style C answers stream: this marker, a JSON head line, then the body bytes.
HEAD_MAGIC = b"\0wapo-http\0"


class BadAgentAnswer(ValueError):
    """The agent's output is not an HTTP answer in any known style."""

    kind = "bad_answer"


class AnswerTooLarge(BadAgentAnswer):
    """The agent answered more than the gateway passes on (``max_answer``)."""

    kind = "answer_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the agent's answer is larger than {limit} bytes")
        self.limit = limit


@dataclass
class AgentResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or isinstance(self.status, bool) or not 100 <= self.status <= 599:
            raise BadAgentAnswer(f"the agent answered with an invalid status {self.status!r}")


def _headers(raw: object) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if isinstance(raw, dict):
        items = raw.items()
    elif isinstance(raw, list):
        items = [tuple(pair) for pair in raw if isinstance(pair, (list, tuple)) and len(pair) == 2]
    else:
        raise BadAgentAnswer("the agent's headers are neither an object nor a list of pairs")
    out = []
    for name, value in items:
        if isinstance(value, list):
            out += [(str(name), str(v)) for v in value]
        else:
            out.append((str(name), str(value)))
    return out


def _body(raw: object) -> bytes:
    if raw is None:
        return b""
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8")
    return json.dumps(raw).encode()


def _from_mapping(data: dict) -> AgentResponse:
    if "status" not in data:
        raise BadAgentAnswer(f"the agent answered without a status: {MAIN_CONTRACT}")
    status = data["status"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    return AgentResponse(status, _headers(data.get("headers")), _body(data.get("body")))


STYLES = ("(A) `async function main(request)` returning JSON.stringify({status, headers, body}); "
          "(B) a bundle that answers by itself, e.g. `handle(app)` of @phala/wapo-env; "
          "(C) `export default { fetch(request, env, ctx) }` returning a Response")
NO_ANSWER = (f"the agent finished without an answer: it must be written in one of three styles: {STYLES} "
             "(a script run with `wapo exec` answers by setting scriptOutput)")
MAIN_CONTRACT = ("main(request) must return (or resolve to) JSON.stringify({status, headers, body}) "
                 "or an object {status, headers, body}")


def _not_an_answer(output: bytes) -> BadAgentAnswer | None:
    """The error for output that is JSON but not an object (e.g. ``main`` returned a number)."""
    try:
        value = json.loads(output)
    except ValueError:
        return None
    if isinstance(value, dict):
        return None
    shown = output[:60].decode("utf-8", "replace") + ("..." if len(output) > 60 else "")
    return BadAgentAnswer(f"{MAIN_CONTRACT}; it returned {shown}")


def parse_output(output: bytes) -> AgentResponse:
    """Style A (JSON text) or B (msgpack) output of a finished run."""
    if not output:
        raise BadAgentAnswer(NO_ANSWER)
    if output[:1] in (b"{", b" ", b"\n", b"\t", b"\r"):
        try:
            data = json.loads(output)
        except ValueError as exc:
            raise BadAgentAnswer(f"the agent's answer is not valid JSON: {exc}") from None
    else:  # msgpack (style B); JSON that is not an object (main returned a number) is told apart only here
        try:
            data = msgpack.unpackb(output, raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException, TypeError) as exc:
            raise _not_an_answer(output) or BadAgentAnswer(
                f"the agent's answer is neither JSON nor msgpack: {exc}") from None
        if not isinstance(data, dict) and (wrong := _not_an_answer(output)) is not None:
            raise wrong
    if not isinstance(data, dict):
        raise BadAgentAnswer(f"the agent's answer is not an object with status, headers and body: {MAIN_CONTRACT}")
    if data.get("success") is False and "error" in data and "status" not in data:
        raise BadAgentAnswer(f"the agent failed: {data['error']}")
    return _from_mapping(data)


def parse_head(line: bytes) -> AgentResponse:
    """The head line of a streamed (style C) answer."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise BadAgentAnswer(f"bad streamed head: {exc}") from None
    if not isinstance(data, dict):
        raise BadAgentAnswer("bad streamed head")
    return AgentResponse(int(data.get("status", 0)), _headers(data.get("headers")))
