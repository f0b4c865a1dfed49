"""``wapo init`` and ``wapo dev`` as a developer uses them: real processes, real esbuild (npm), real
HTTP on 127.0.0.1. The acceptance path of issue 15: init -> dev -> edit -> the change answers
without a restart -> publish -> a gateway runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from wapo.cli.init_cmd import InitError, create

needs_npm = pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None,
                               reason="npm/node are not installed")
WAIT = 60  # a loaded machine: builds and reloads take longer


def env_for(tmp_path: Path) -> dict:
    return dict(os.environ, WAPO_DATA_DIR=str(tmp_path / "data"))


def wapo(tmp_path: Path, *argv: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wapo.cli.main", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env_for(tmp_path), cwd=cwd)


class Process:
    """A `wapo` subcommand running in the background, its stdout collected line by line."""

    def __init__(self, tmp_path: Path, *argv: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "wapo.cli.main", *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env_for(tmp_path))
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = WAIT) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text)
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.2)
                m = re.search(pattern, self.text)
                if m:
                    return m
                raise AssertionError(f"exited {self.proc.returncode} before {pattern!r}:\n{self.text}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.text}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode


def get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- wapo init ----------------------------------------------------------------------------------

@pytest.mark.parametrize("template,entry", [("js", "src/index.js"), ("ts", "src/index.ts"), ("hono", "src/index.ts")])
def test_init_writes_a_ready_project_with_pinned_versions(tmp_path, template, entry):
    project = tmp_path / "My Agent"
    out = wapo(tmp_path, "init", str(project), "--template", template)
    assert out.returncode == 0, out.stderr
    assert "wapo dev ." in out.stdout and "wapo publish ." in out.stdout
    manifest = json.loads((project / "package.json").read_text())
    assert manifest["name"] == "my-agent"
    assert "wapo call" in manifest["scripts"]["test"] and manifest["scripts"]["dev"] == "wapo dev ."
    versions = {**manifest.get("dependencies", {}), **manifest.get("devDependencies", {})}
    assert versions["esbuild"] == "0.28.2"
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in versions.values()), versions  # exact pins
    assert (project / entry).is_file() and (project / "README.md").is_file() and (project / ".gitignore").is_file()
    assert (project / "tsconfig.json").is_file() == (template != "js")
    assert "{{" not in (project / "README.md").read_text()
    if template == "hono":
        assert manifest["dependencies"] == {"hono": "4.13.19"}


def test_init_refuses_to_overwrite(tmp_path):
    create(tmp_path / "p", "js")
    with pytest.raises(InitError, match="already has .*package.json"):
        create(tmp_path / "p", "ts")


@needs_npm
def test_js_template_answers_with_wapo_call(tmp_path):
    project = tmp_path / "p"
    create(project, "js")
    out = wapo(tmp_path, "call", ".", "--path", "/hello", "--query", "name=test", "--body-only", cwd=project)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"hello": "test", "path": "/hello"}


@needs_npm
def test_hono_template_after_npm_install(tmp_path):
    project = tmp_path / "h"
    create(project, "hono")
    install = subprocess.run(["npm", "install", "--omit=dev", "--no-audit", "--no-fund"], cwd=project,
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    out = wapo(tmp_path, "call", str(project), "--path", "/hello", "--query", "name=h", "--body-only")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"hello": "h", "path": "/hello"}
    published = wapo(tmp_path, "publish", str(project))
    assert published.returncode == 0, published.stderr


# --- wapo dev -----------------------------------------------------------------------------------

@needs_npm
def test_init_dev_edit_reload_publish_then_a_gateway_runs_it(tmp_path):
    project = tmp_path / "agent"
    assert wapo(tmp_path, "init", str(project), "--template", "ts").returncode == 0
    dev = Process(tmp_path, "dev", str(project), "--port", "0")
    try:
        base = dev.wait_for(r"serving .* on (http://127\.0\.0\.1:\d+)").group(1)
        first = dev.wait_for(r"built (Qm\w+)").group(1)
        status, body, headers = get(base + "/hello?name=one")
        assert status == 200 and json.loads(body) == {"hello": "one", "path": "/hello"}
        rid = headers["X-Request-Id"]
        dev.wait_for(rf"GET /hello 200 \d+\.\dms id={rid}")
        status, body, _ = get(f"{base}/ipfs/{first}/x?name=two")
        assert status == 200 and json.loads(body) == {"hello": "two", "path": "/x"}

        index = project / "src" / "index.ts"
        source = index.read_text()
        index.write_text(source.replace("return Response.json({ hello: name, path: url.pathname });",
                                        'if (url.pathname === "/boom") throw new Error("boom-" + name);\n'
                                        '    return Response.json({ hi: name, edited: true });'))
        edited = index.read_text().splitlines()
        line = next(i for i, text in enumerate(edited, 1) if "boom-" in text)
        second = dev.wait_for(r"rebuilt (Qm\w+)").group(1)
        assert second != first
        status, body, _ = get(base + "/hello?name=three")  # the same server, no restart
        assert status == 200 and json.loads(body) == {"hi": "three", "edited": True}
        status, body, headers = get(base + "/boom?name=x")
        assert status == 500
        rid = headers["X-Request-Id"]
        dev.wait_for(rf"GET /boom 500 \d+\.\dms id={rid} : .*boom-x")
        dev.wait_for(rf"error in run {rid}:\n.*boom-x\n.*{second}\.js:\d+:\d+ -> src/index\.ts:{line}:\d+\)")
        assert dev.proc.poll() is None
    finally:
        assert dev.stop() == 0, dev.text

    published = wapo(tmp_path, "publish", str(project))
    assert published.returncode == 0, published.stderr
    cid = published.stdout.splitlines()[-1]
    assert cid == second  # the same bundle as the last dev build
    port = free_port()
    gateway = Process(tmp_path, "serve", "--port", str(port))
    try:
        gateway.wait_for(r"wapo gateway on")
        status, body, _ = get(f"http://127.0.0.1:{port}/ipfs/{cid}/hello?name=gw")
        assert status == 200 and json.loads(body) == {"hi": "gw", "edited": True}
        status, _, headers = get(f"http://127.0.0.1:{port}/ipfs/{cid}/boom?name=y")
        assert status == 500
        logs = get(f"http://127.0.0.1:{port}/logs/all/ipfs/{cid}?requestId={headers['X-Request-Id']}")[1].decode()
        assert "boom-y" in logs and f"-> src/index.ts:{line}:" in logs
        gateway.wait_for(rf"GET /ipfs/{cid}/hello 200 ")
    finally:
        gateway.stop()


def test_dev_warns_near_the_memory_limit_and_keeps_serving_after_a_bad_edit(tmp_path):
    agent = tmp_path / "agent.js"
    agent.write_text("async function main(request) {\n"
                     "  const big = new Uint8Array(90 * 1000 * 1000); big[1] = 1;\n"
                     "  return JSON.stringify({status: 200, body: String(big.length)});\n}\n")
    dev = Process(tmp_path, "dev", str(agent), "--port", "0", "--memory-limit", "100MB")
    try:
        base = dev.wait_for(r"on (http://127\.0\.0\.1:\d+)").group(1)
        built = dev.wait_for(r"built (Qm\w+) \(\d+ bytes, as is").group(1)
        status, body, headers = get(base + "/")
        assert status == 200 and body == b"90000000"
        rid = headers["X-Request-Id"]
        dev.wait_for(rf"warning: run {rid} came within 80% of a limit: memory .*--memory-limit")
        agent.write_text("async function main(request) {\n  return JSON.stringify({status: 200\n")
        dev.wait_for(rf"rebuild failed \(still serving {built}\):\n.*does not compile")
        assert get(base + "/")[0] == 200
    finally:
        assert dev.stop() == 0, dev.text
