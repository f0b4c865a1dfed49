"""Agents built on popular npm packages (pinned), bundled by wapo's own bundling (esbuild and the
Node built-ins), run in the real guest, with the answer checked against the same agent on Node."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from wapo.agent import AgentRequest, call_agent
from wapo.cli import bundling
from wapo.host.net.policy import NetworkPolicy

import npm_agents

PACKAGES = {"jose": "6.2.17", "zod": "4.6.7", "esbuild": "0.28.2"}
SDKS = {"openai": "7.55.0", "@anthropic-ai/sdk": "1.10.0", "viem": "2.57.20", "esbuild": "0.28.2"}
AGENTS = Path(__file__).resolve().parent / "agents"


def _installed(pins: dict[str, str]) -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    try:
        return npm_agents.ensure_installed(pins)
    except npm_agents.NpmMissing:
        pytest.skip("npm is not installed")


@pytest.fixture(scope="module")
def packages() -> Path:
    return _installed(PACKAGES)


@pytest.fixture(scope="module")
def sdks() -> Path:
    return _installed(SDKS)


def _sse(events: list[tuple[str | None, dict | str]]) -> bytes:
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return "".join(out).encode()


class StubLLM(BaseHTTPRequestHandler):
    """Canned answers of the OpenAI and Anthropic APIs (what the SDKs parse), on 127.0.0.1."""

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if self.path == "/v1/chat/completions":
            self._openai(request)
        elif self.path == "/v1/messages":
            self._anthropic(request)
        else:
            self._send(404, b'{"error": "no such stub route"}')

    def _openai(self, request: dict) -> None:
        if request["model"] == "missing":
            error = {"error": {"message": "The model `missing` does not exist", "type": "invalid_request_error",
                               "code": "model_not_found", "param": None}}
            return self._send(404, json.dumps(error).encode())
        base = {"id": "chatcmpl-1", "created": 1767225600, "model": request["model"]}
        if request.get("stream"):
            chunks = [(None, {**base, "object": "chat.completion.chunk",
                              "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
                      for word in ("Hel", "lo ", "stream")]
            return self._send(200, _sse(chunks + [(None, "[DONE]")]), "text/event-stream")
        answer = {**base, "object": "chat.completion",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the stub"},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
        self._send(200, json.dumps(answer).encode())

    def _anthropic(self, request: dict) -> None:
        if request["model"] == "missing":
            error = {"type": "error", "error": {"type": "not_found_error", "message": "model: missing"}}
            return self._send(404, json.dumps(error).encode())
        message = {"id": "msg_1", "type": "message", "role": "assistant", "model": request["model"],
                   "content": [{"type": "text", "text": "Hello from the stub"}], "stop_reason": "end_turn",
                   "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 4}}
        if not request.get("stream"):
            return self._send(200, json.dumps(message).encode())
        start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": 3, "output_tokens": 0}}
        events = [("message_start", {"type": "message_start", "message": start}),
                  ("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}})]
        events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": t}}) for t in ("Hel", "lo ", "stream")]
        events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
                   ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": {"output_tokens": 3}}),
                   ("message_stop", {"type": "message_stop"})]
        self._send(200, _sse(events), "text/event-stream")


@pytest.fixture(scope="module")
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def project_with(packages: Path, tmp_path: Path, agent: str) -> Path:
    """A project folder holding the agent, its node_modules the shared pinned install (a link)."""
    (tmp_path / "node_modules").symlink_to(packages / "node_modules", target_is_directory=True)
    (tmp_path / "package.json").write_text(json.dumps({"name": "t", "private": True, "type": "module"}))
    target = tmp_path / agent
    shutil.copy(AGENTS / agent, target)
    return target


def on_node(agent: Path, url: str = "http://localhost/") -> dict:
    runner = agent.with_name("run-node.mjs")
    runner.write_text(f'import agent from "./{agent.name}";\n'
                      f'const res = await agent.fetch(new Request({json.dumps(url)}));\n'
                      'process.stdout.write(await res.text());\n')
    out = subprocess.run(["node", str(runner)], capture_output=True, text=True, timeout=120, cwd=agent.parent)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def on_wapo(agent: Path, url: str = "http://localhost/") -> dict:
    built = bundling.bundle(agent)
    network = NetworkPolicy(allow=("127.0.0.1/32",))  # the stub server
    result = asyncio.run(call_agent(built.code.decode(), AgentRequest(url=url), name=built.name, network=network))
    assert result.error is None, result.error
    assert result.response.status == 200
    return json.loads(result.response.body)


def test_jose_hs256_and_es256_sign_and_verify(packages, tmp_path):
    agent = project_with(packages, tmp_path, "jose_jwt.mjs")
    got = on_wapo(agent)
    assert got == on_node(agent)
    assert got["payload"]["sub"] == "user-1" and got["protectedHeader"] == {"alg": "HS256", "typ": "JWT"}
    assert got["failures"] == [["ERR_JWS_SIGNATURE_VERIFICATION_FAILED", True], ["ERR_JWT_EXPIRED", "exp"]]
    assert got["es256"] == [{"alg": "ES256"}, {"sub": "es", "iat": 1767225600}, "EC", "P-256", 3,
                            "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"]


def test_zod_parses_and_rejects(packages, tmp_path):
    agent = project_with(packages, tmp_path, "zod_schema.mjs")
    got = on_wapo(agent)
    assert got == on_node(agent)
    assert got["good"] == {"name": "Ada", "age": 36, "email": "ada@example.com", "tags": [], "joined": [2026, 1, 2]}
    assert ["email", "invalid_format"] in got["issues"] and got["union"] == [True, False] and got["coerced"] == 42


def test_openai_sdk_against_a_stub(sdks, stub, tmp_path):
    agent = project_with(sdks, tmp_path, "openai_chat.mjs")
    url = "http://localhost/?base=" + stub
    got = on_wapo(agent, url)
    assert got == on_node(agent, url)
    assert got["text"] == "Hello from the stub" and got["streamed"] == "Hello stream"
    assert got["usage"]["total_tokens"] == 7
    assert got["error"][0] == "NotFoundError" and got["error"][1] == 404 and "missing" in got["error"][2]


def test_anthropic_sdk_against_a_stub(sdks, stub, tmp_path):
    agent = project_with(sdks, tmp_path, "anthropic_messages.mjs")
    url = "http://localhost/?base=" + stub
    got = on_wapo(agent, url)
    assert got == on_node(agent, url)
    assert got["text"] == "Hello from the stub" and got["streamed"] == "Hello stream" == got["final"]
    assert got["error"] == ["NotFoundError", 404]


def test_viem_signs_and_encodes(sdks, tmp_path):
    agent = project_with(sdks, tmp_path, "viem_sign.mjs")
    got = on_wapo(agent)
    assert got == on_node(agent)
    assert got["recovered"] == got["address"] == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # hardhat account 1
    assert got["data"].startswith("0xa9059cbb") and got["decoded"] == [
        "transfer", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "1500000000000000000"]
