"""OpenTelemetry export: a real `wapo serve --otlp-endpoint` sending to a receiver started here (an
aiohttp server decoding the OTLP protobufs), an agent fetching from a local upstream that records
the W3C traceparent it receives."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time

from aiohttp import web
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from test_gateway_process import Server, free_port, http, servers  # noqa: F401  (the servers fixture)
from test_workers import publish

AGENT = """\
export default {
  async fetch(request) {
    console.log("before the fetch");
    const upstream = await fetch(new URL(request.url).searchParams.get("up"));
    console.warn("upstream said " + (await upstream.text()));
    return new Response("done", {status: 201});
  },
};
"""


class Receiver:
    """An OTLP/HTTP receiver and an upstream, on one port, in a thread with its own loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: list = []
        self.logs: list = []
        self.traceparents: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        assert self._ready.wait(30)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/logs", self._logs)
        app.router.add_get("/upstream", self._upstream)
        runner = self._runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    @staticmethod
    async def _body(request: web.Request) -> bytes:
        body = await request.read()
        return gzip.decompress(body) if request.headers.get("Content-Encoding") == "gzip" else body

    async def _traces(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest.FromString(await self._body(request))
        for resource_spans in message.resource_spans:
            for scope in resource_spans.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _logs(self, request: web.Request) -> web.Response:
        message = ExportLogsServiceRequest.FromString(await self._body(request))
        for resource_logs in message.resource_logs:
            for scope in resource_logs.scope_logs:
                self.logs.extend(scope.log_records)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _upstream(self, request: web.Request) -> web.Response:
        self.traceparents.append(request.headers.get("traceparent", ""))
        return web.Response(text="pong")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)


def attrs(item) -> dict:
    return {a.key: (a.value.string_value or a.value.int_value or a.value.double_value) for a in item.attributes}


def test_spans_traceparent_and_logs_reach_the_receiver(tmp_path, servers):
    receiver = Receiver()
    try:
        data_dir = tmp_path / "data"
        server = Server(data_dir, "--otlp-endpoint", f"http://127.0.0.1:{receiver.port}",
                        "--allow-address", "127.0.0.0/8",
                        env={"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100"})
        servers.append(server)
        cid = publish(tmp_path, data_dir, "agent.js", AGENT)
        up = f"http://127.0.0.1:{receiver.port}/upstream"
        status, headers, body = http("GET", f"{server.base}/ipfs/{cid}/x?up={up}")
        assert (status, body) == (201, b"done")
        request_id = headers["x-request-id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            names = {s.name for s in receiver.spans}
            if {"GET /ipfs/{cid}/{path}", "agent run", "fetch GET"} <= names and len(receiver.logs) >= 2:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"spans {[s.name for s in receiver.spans]}, {len(receiver.logs)} logs\n"
                                 + "".join(server.output))
        by_name = {s.name: s for s in receiver.spans}
        served, run, fetched = by_name["GET /ipfs/{cid}/{path}"], by_name["agent run"], by_name["fetch GET"]
        assert served.kind == served.SPAN_KIND_SERVER and fetched.kind == fetched.SPAN_KIND_CLIENT
        assert served.trace_id == run.trace_id == fetched.trace_id
        assert run.parent_span_id == served.span_id and fetched.parent_span_id == run.span_id
        assert attrs(served)["http.response.status_code"] == 201
        assert attrs(served)["wapo.request_id"] == request_id
        assert attrs(run)["wapo.cid"] == cid and attrs(run)["wapo.request_id"] == request_id
        assert attrs(run)["wapo.duration_ms"] > 0
        assert attrs(fetched)["url.full"] == up and attrs(fetched)["http.response.status_code"] == 200
        [traceparent] = receiver.traceparents
        assert traceparent[:-3] == f"00-{fetched.trace_id.hex()}-{fetched.span_id.hex()}"
        assert int(traceparent[-2:], 16) & 1, "sampled"
        lines = {r.body.string_value: r for r in receiver.logs}
        assert set(lines) == {"before the fetch", "upstream said pong"}
        assert lines["upstream said pong"].severity_text == "WARN"
        for record in lines.values():
            assert record.trace_id == run.trace_id and record.span_id == run.span_id
            assert attrs(record)["wapo.request_id"] == request_id
    finally:
        receiver.stop()


def test_a_limit_hit_is_on_the_run_span_and_incoming_traces_continue(tmp_path, servers):
    receiver = Receiver()
    try:
        data_dir = tmp_path / "data"
        server = Server(data_dir, "--otlp-endpoint", f"http://127.0.0.1:{receiver.port}", "--time-limit", "300ms",
                        env={"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100"})
        servers.append(server)
        cid = publish(tmp_path, data_dir, "forever.js",
                      "async function main() { await new Promise(r => setTimeout(r, 5000)); }")
        trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        import urllib.request
        req = urllib.request.Request(f"{server.base}/ipfs/{cid}", headers={"traceparent": f"00-{trace_id}-{parent}-01"})
        try:
            urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as exc:
            assert exc.code == 500
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "agent run" not in {s.name for s in receiver.spans}:
            time.sleep(0.2)
        by_name = {s.name: s for s in receiver.spans}
        run, served = by_name["agent run"], by_name["GET /ipfs/{cid}"]
        assert served.trace_id.hex() == trace_id and served.parent_span_id.hex() == parent
        assert attrs(run)["wapo.limit"] == "time" and attrs(run)["wapo.error.kind"] == "time_limit"
        assert run.status.code == run.status.STATUS_CODE_ERROR
    finally:
        receiver.stop()


def test_without_an_endpoint_the_sdk_is_not_even_imported(tmp_path):
    import subprocess
    import sys
    code = ("import sys; from wapo.gateway.app import make_app; from wapo.gateway.config import GatewayConfig; "
            f"make_app(GatewayConfig(data_dir={str(tmp_path)!r})); "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_bad_endpoint_is_refused_at_start(tmp_path):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-m", "wapo.cli.main", "serve", "--otlp-endpoint", "collector:4318",
                           "--port", str(free_port()), "--data-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "--otlp-endpoint" in done.stderr and "http://" in done.stderr, done.stderr


def test_the_endpoint_comes_from_the_flag_the_config_or_the_environment(tmp_path, monkeypatch):
    import argparse

    from wapo.cli import serve_cmd
    config = tmp_path / "wapo.toml"
    config.write_text('otlp_endpoint = "http://from-config:4318"\nadmin_token = "from-config"\n')
    parser = argparse.ArgumentParser()
    serve_cmd.add_parser(parser.add_subparsers())

    def settings(*argv: str) -> tuple:
        c = serve_cmd.config_from(parser.parse_args(["serve", "--data-dir", str(tmp_path / "d"), *argv]))
        return c.otlp_endpoint, c.admin_token
    monkeypatch.setenv("WAPO_OTLP_ENDPOINT", "http://from-env:4318")
    monkeypatch.setenv("WAPO_ADMIN_TOKEN", "from-env")
    assert settings() == ("http://from-env:4318", "from-env")
    assert settings("--config", str(config)) == ("http://from-config:4318", "from-config")
    assert settings("--config", str(config), "--otlp-endpoint", "http://flag:1", "--admin-token", "flag") == \
        ("http://flag:1", "flag")
    monkeypatch.delenv("WAPO_OTLP_ENDPOINT")
    monkeypatch.delenv("WAPO_ADMIN_TOKEN")
    assert settings() == (None, None)


def test_scheduled_runs_are_traced_too(tmp_path, servers):
    receiver = Receiver()
    try:
        data_dir = tmp_path / "data"
        cid = publish(tmp_path, data_dir, "ticker.js",
                      "export default { async scheduled(event) { console.log('tick ' + event.cron); } };")
        config = tmp_path / "wapo.toml"
        config.write_text(f'[cron.ticker]\ncid = "{cid}"\nschedule = "* * * * * *"\n')
        server = Server(data_dir, "--config", str(config), "--otlp-endpoint", f"http://127.0.0.1:{receiver.port}",
                        env={"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100"})
        servers.append(server)
        def tied() -> list:  # console lines of a run whose span arrived
            by_span = {s.span_id for s in receiver.spans if s.name == "agent run"}
            return [r for r in list(receiver.logs) if r.span_id in by_span]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not tied():
            time.sleep(0.2)
        assert tied(), "".join(server.output)
        assert tied()[0].body.string_value == "tick * * * * * *"
        run = next(s for s in receiver.spans if s.span_id == tied()[0].span_id)
        assert attrs(run)["wapo.run.trigger"] == "cron" and attrs(run)["wapo.cron.job"] == "ticker"
        assert attrs(run)["wapo.cid"] == cid and not run.parent_span_id  # a trace of its own
    finally:
        receiver.stop()
