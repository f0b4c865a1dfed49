"""OpenTelemetry export (``--otlp-endpoint URL``): a server span per request, a child span per
agent run, a span per outgoing fetch of the agent (its W3C ``traceparent`` sent upstream), and the
agent's console lines as OTLP logs tied to the run's span.

Off by default, and then free: this module is imported, and the OpenTelemetry SDK loaded, only
when an endpoint is configured. Exported over OTLP/HTTP (protobuf) to ``URL/v1/traces`` and
``URL/v1/logs`` in batches (``OTEL_BSP_SCHEDULE_DELAY`` / ``OTEL_BLRP_SCHEDULE_DELAY``, in ms, set
how often); what is pending is flushed when the gateway stops.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable

from aiohttp import web

from ..host import FetchHook, LogRecord
from .context import REQUEST_ID

SEVERITY = {"error": 17, "warn": 13, "info": 9, "log": 9, "debug": 5, "trace": 1}  # OTLP severity numbers


class Telemetry:
    """The tracer and logger of this process, exporting to one OTLP/HTTP endpoint."""

    def __init__(self, endpoint: str, service_name: str = "wapo") -> None:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        base = endpoint.rstrip("/")
        resource = Resource.create({"service.name": service_name,
                                    "service.instance.id": f"{socket.gethostname()}:{os.getpid()}"})
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
        self.tracer = self.tracer_provider.get_tracer("wapo.gateway")
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/v1/logs")))
        self.logger = self.logger_provider.get_logger("wapo.agent")
        self.propagator = TraceContextTextMapPropagator()
        self._kind, self._status, self._code, self._in_context = SpanKind, Status, StatusCode, set_span_in_context

    # --- spans ------------------------------------------------------------------------------

    def request_span(self, request: web.Request) -> Any:
        """The server span of a request (continuing the caller's trace if it sent a traceparent)."""
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        parent = self.propagator.extract(dict(request.headers))
        return self.tracer.start_as_current_span(
            f"{request.method} {route}", context=parent, kind=self._kind.SERVER, record_exception=False,
            set_status_on_exception=False,
            attributes={"http.request.method": request.method, "http.route": route, "url.path": request.path,
                        "wapo.request_id": request[REQUEST_ID]})

    def start_run(self, cid: str, request_id: str, kind: str = "request") -> Any:
        """The span of one agent run, a child of the current (request) span."""
        return self.tracer.start_span("agent run", attributes={"wapo.cid": cid, "wapo.request_id": request_id,
                                                               "wapo.run.trigger": kind})

    def end_run(self, span: Any, duration: float, error_kind: str | None, error: str | None) -> None:
        span.set_attribute("wapo.duration_ms", round(duration * 1000, 3))
        if error_kind:
            span.set_attribute("wapo.error.kind", error_kind)
            if error_kind.endswith("_limit"):
                span.set_attribute("wapo.limit", error_kind.removesuffix("_limit"))
            span.set_status(self._status(self._code.ERROR, (error or error_kind).splitlines()[0][:200]))
        span.end()

    def fetch_hook(self, run_span: Any) -> Callable[[str, str], FetchHook]:
        """The hook that gives each outgoing fetch of the run a client span and its traceparent."""
        parent = self._in_context(run_span)

        def on_fetch(method: str, url: str) -> FetchHook:
            span = self.tracer.start_span(f"fetch {method}", context=parent, kind=self._kind.CLIENT,
                                          attributes={"http.request.method": method, "url.full": url})
            carrier: dict[str, str] = {}
            self.propagator.inject(carrier, context=self._in_context(span))

            def done(status: int | None, error: str | None) -> None:
                if status is not None:
                    span.set_attribute("http.response.status_code", status)
                if error:
                    span.set_status(self._status(self._code.ERROR, error[:200]))
                span.end()
            return FetchHook(headers=tuple(carrier.items()), done=done)
        return on_fetch

    def console(self, run_span: Any) -> Callable[[LogRecord], None]:
        """The run's console lines as OTLP logs in the run span's context."""
        from opentelemetry._logs import SeverityNumber
        context = self._in_context(run_span)
        attributes = dict(run_span.attributes or {}) if hasattr(run_span, "attributes") else {}
        attributes = {k: v for k, v in attributes.items() if k.startswith("wapo.")}

        def on_log(record: LogRecord) -> None:
            self.logger.emit(timestamp=int(record.time * 1e9), context=context, body=record.message,
                             severity_text=record.level.upper(),
                             severity_number=SeverityNumber(SEVERITY.get(record.level, 9)),
                             attributes=attributes)
        return on_log

    def shutdown(self) -> None:
        """Flush what is pending and stop the exporters (blocking: run it off the event loop)."""
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


def telemetry_middleware(telemetry: Telemetry):
    """Each request in a server span (the status of its answer as an attribute)."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        with telemetry.request_span(request) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                span.set_attribute("http.response.status_code", exc.status)
                raise
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(telemetry._status(telemetry._code.ERROR))
            return response
    return middleware
