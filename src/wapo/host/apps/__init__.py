"""Long-running apps on the host: their input channels (HTTP requests and queries), the
``app.*`` services a JS app serves them with, and the aiohttp side that feeds an app requests
(the gateway's route and an app's own port). Importing this package registers the services."""

from . import http, query  # noqa: F401  (registers the app.http.* and app.query.* services)
from .channel import AppNotAnswering, BadAnswer, QueryFailed, http_request, query as send_query
from .server import AppListener, serve_request

__all__ = ["AppListener", "AppNotAnswering", "BadAnswer", "QueryFailed", "http_request", "send_query", "serve_request"]
