"""The request an agent receives: the JSON payload of spec section 5, the same for every style."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

# GET and HEAD carry no body: the payload then has no "body" key, since a Request built from it
# (as @phala/wapo-env's handle() does) must not get one, not even "".
METHODS_WITHOUT_BODY = {"GET", "HEAD"}


@dataclass
class AgentRequest:
    method: str = "GET"
    path: str = "/"
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    secret: dict = field(default_factory=dict)
    url: str = "http://localhost/"
    # a scheduled run ({"cron": schedule, "scheduledTime": ms}): style C agents exporting
    # scheduled(event, env, ctx) get it as the event; the others see it in the payload
    scheduled: dict | None = None

    @classmethod
    def from_query_string(cls, query_string: str, **kwargs) -> "AgentRequest":
        return cls(query=parse_qsl(query_string, keep_blank_values=True), **kwargs)

    def payload(self) -> dict:
        queries: dict[str, list[str]] = {}
        for key, value in self.query:
            queries.setdefault(key, []).append(value)
        headers: dict[str, str] = {}
        for name, value in self.headers:
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        payload = {
            "method": self.method.upper(),
            "path": self.path,
            "queries": queries,
            "headers": headers,
            "body": self.body.decode("utf-8", "replace"),
            "secret": self.secret,
            "url": self.url,
        }
        if self.scheduled is not None:
            payload["scheduled"] = self.scheduled
        if payload["method"] in METHODS_WITHOUT_BODY:
            del payload["body"]
        return payload

    def payload_json(self) -> str:
        return json.dumps(self.payload(), ensure_ascii=False, separators=(",", ":"))
