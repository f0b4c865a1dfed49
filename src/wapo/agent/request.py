"""The request an agent receives: the JSON payload of spec section 5, the same for every style."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

METHODS_WITH_BODY = {"POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


@dataclass
class AgentRequest:
    method: str = "GET"
    path: str = "/"
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    secret: dict = field(default_factory=dict)
    url: str = "http://localhost/"

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
        return {
            "method": self.method.upper(),
            "path": self.path,
            "queries": queries,
            "headers": headers,
            "body": self.body.decode("utf-8", "replace"),
            "secret": self.secret,
            "url": self.url,
        }

    def payload_json(self) -> str:
        return json.dumps(self.payload(), ensure_ascii=False, separators=(",", ":"))
