"""Agents built on popular npm packages (pinned), bundled by wapo's own bundling (esbuild and the
Node built-ins), run in the real guest, with the answer checked against the same agent on Node."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from wapo.agent import AgentRequest, call_agent
from wapo.cli import bundling

import npm_agents

PACKAGES = {"jose": "6.2.17", "zod": "4.6.7", "esbuild": "0.28.2"}
AGENTS = Path(__file__).resolve().parent / "agents"


@pytest.fixture(scope="module")
def packages() -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    try:
        return npm_agents.ensure_installed(PACKAGES)
    except npm_agents.NpmMissing:
        pytest.skip("npm is not installed")


def project_with(packages: Path, tmp_path: Path, agent: str) -> Path:
    """A project folder holding the agent, its node_modules the shared pinned install (a link)."""
    (tmp_path / "node_modules").symlink_to(packages / "node_modules", target_is_directory=True)
    (tmp_path / "package.json").write_text(json.dumps({"name": "t", "private": True, "type": "module"}))
    target = tmp_path / agent
    shutil.copy(AGENTS / agent, target)
    return target


def on_node(agent: Path) -> dict:
    runner = agent.with_name("run-node.mjs")
    runner.write_text(f'import agent from "./{agent.name}";\n'
                      'const res = await agent.fetch(new Request("http://localhost/"));\n'
                      'process.stdout.write(await res.text());\n')
    out = subprocess.run(["node", str(runner)], capture_output=True, text=True, timeout=120, cwd=agent.parent)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def on_wapo(agent: Path) -> dict:
    built = bundling.bundle(agent)
    result = asyncio.run(call_agent(built.code.decode(), AgentRequest(), name=built.name))
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
