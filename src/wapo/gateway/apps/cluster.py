"""Long-running apps on a cluster: each app runs on exactly one node, every node answers for it.

With ``--database``, app records live in the database (``store/pgapps.py``). Each node's first
process holds a lease per app it runs, renewed every ``RENEW_EVERY`` s and valid ``LEASE_TTL`` s
(by the database's clock); free or expired leases are taken by whichever node claims first. A
node runs only the apps it holds (the supervisor's ``owns``), and answers ``/app/<id>/...`` for
the others by forwarding to the owner's internal route ``/_cluster/app/<id>/...`` (HTTP with
streamed bodies, WebSockets, queries: ``proxy.py``'s relays), which requires the cluster
token (``X-Wapo-Cluster-Token``, derived from the cluster key) and strips it before the app sees
the request. Every app answer carries ``X-Wapo-App-Node: OWNER``.

Takeover: an owner that dies stops renewing; its leases expire within LEASE_TTL and the next
claim of another node (within RENEW_EVERY) takes them and starts the apps: TAKEOVER_BOUND s in
all, plus the app's own start. An owner that cannot reach the database stops its apps before
its leases can expire (``FENCE_AFTER``), so an app does not run on two nodes at once. A node
shutting down releases its leases, so the others take over at their next claim.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time

import aiohttp
from aiohttp import web

from ..context import CONFIG, REQUEST_ID, STORE, error_response
from . import proxy
from .routes import APPS, ROUTES

log = logging.getLogger("wapo.gateway.apps")

LEASE_TTL = 5.0
RENEW_EVERY = 1.0
FENCE_AFTER = LEASE_TTL - RENEW_EVERY - 0.5  # no renewal for this long: stop this node's apps
TAKEOVER_BOUND = LEASE_TTL + RENEW_EVERY  # from the owner's death to another node holding the app
TOKEN_HEADER = "X-Wapo-Cluster-Token"
APP_NODE_HEADER = "X-Wapo-App-Node"
INTERNAL_PREFIX = "/_cluster"
CLUSTER = web.AppKey("apps_cluster", object)
APP_NODE = web.RequestKey("app_node", str)


class AppCluster:
    """This node's view of app ownership: what it holds, and who holds the rest."""

    def __init__(self, records, node: str, url: str, token: str) -> None:
        self.records, self.node, self.url, self.token = records, node, url, token
        self.instance = os.urandom(8).hex()  # tells this process's leases from a restarted one's
        self.owned: set[str] = set()
        self.leases: dict = {}
        self.manager = None
        self._renewed = time.monotonic()
        self._task: asyncio.Task | None = None
        self.session: aiohttp.ClientSession | None = None

    def owns(self, app_id: str) -> bool:
        return app_id in self.owned

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(auto_decompress=False,
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=3))
        await self.renew()
        self._task = asyncio.create_task(self._loop(), name="app leases")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self.renew()
            except Exception:
                log.exception("renewing the app leases failed")

    async def renew(self) -> None:
        try:
            owned = await asyncio.to_thread(self.records.claim, self.node, self.instance, self.url, LEASE_TTL)
            leases = await asyncio.to_thread(self.records.leases)
            self._renewed = time.monotonic()
        except Exception as exc:  # noqa: BLE001 (the database is away: fence, then keep trying)
            if not self.owned or time.monotonic() - self._renewed < FENCE_AFTER:
                return
            log.error("cannot renew this node's app leases for %.1f s (%s): stopping its apps before the leases "
                      "expire and another node takes them", time.monotonic() - self._renewed, exc)
            owned, leases = set(), {}
        changed = owned != self.owned
        self.owned, self.leases = owned, leases
        if changed and self.manager is not None:
            if owned:
                log.info("node %s runs app(s) %s", self.node, ", ".join(sorted(owned)))
            await self.manager.reload()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        if self.owned:
            try:
                await asyncio.wait_for(asyncio.to_thread(self.records.release, self.instance), 5)
            except Exception as exc:  # noqa: BLE001 (the leases expire by themselves)
                log.warning("could not release the app leases: %s", exc)
        if self.session is not None:
            await self.session.close()


def install(app: web.Application) -> list[tuple[str, str, object]]:
    """Make the first process's app manager a cluster member; the routes to register (each app
    route answers locally for an owned app and forwards otherwise), plus the internal ones."""
    from ...store.pgapps import PgAppRecords

    config = app[CONFIG]
    key = config.cluster_key()
    cluster = AppCluster(PgAppRecords(app[STORE]), config.node, config.advertised_url, key.internal_token)
    manager = app[APPS]
    manager.records, manager.owns = cluster.records, cluster.owns
    cluster.manager = manager
    app[CLUSTER] = cluster

    async def start(app: web.Application) -> None:
        await cluster.start()

    async def stop(app: web.Application) -> None:
        await cluster.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.on_response_prepare.append(_app_node_header)
    routes: list[tuple[str, str, object]] = []
    for method, path, handler in ROUTES:
        if "{id}" in path:
            routes.append((method, path, _routed(handler)))
            app.router.add_route(method, INTERNAL_PREFIX + path, _internal(handler))
        else:
            routes.append((method, path, handler))
    return routes


async def _app_node_header(request: web.Request, response: web.StreamResponse) -> None:
    node = request.get(APP_NODE)
    if node is not None:
        response.headers[APP_NODE_HEADER] = node


def _routed(handler):
    async def route(request: web.Request) -> web.StreamResponse:
        cluster: AppCluster = request.app[CLUSTER]
        app_id = request.match_info["id"]
        if cluster.owns(app_id):
            request[APP_NODE] = cluster.node
            return await handler(request)
        lease = cluster.leases.get(app_id)
        if lease is None or lease.node == cluster.node:
            cluster.leases = await asyncio.to_thread(cluster.records.leases)
            lease = cluster.leases.get(app_id)
        if lease is None or (lease.url == cluster.url and not cluster.owns(app_id)):
            if app_id in await asyncio.to_thread(cluster.records.load):
                response = error_response(503, f"app {app_id} has no running owner right now; a node takes it over "
                                               f"within {TAKEOVER_BOUND:g} s", request[REQUEST_ID])
                response.headers["Retry-After"] = "1"
                return response
            return error_response(404, f"no app {app_id!r} (deploy it with `wapo deploy --database ...`)",
                                  request[REQUEST_ID])
        return await _forward(request, cluster, lease)
    return route


async def _forward(request: web.Request, cluster: AppCluster, lease) -> web.StreamResponse:
    url = lease.url.rstrip("/") + INTERNAL_PREFIX + str(request.rel_url)
    extra = ((TOKEN_HEADER, cluster.token),)
    try:
        if proxy._is_websocket(request):
            return await proxy._forward_websocket(request, cluster.session, url, extra)
        return await proxy._forward_http(request, cluster.session, url, extra)
    except aiohttp.ClientError as exc:
        response = error_response(503, f"app {request.match_info['id']}'s node {lease.node} did not answer ({exc}); "
                                       f"another node takes the app over within {TAKEOVER_BOUND:g} s",
                                  request[REQUEST_ID])
        response.headers["Retry-After"] = "1"
        return response


def _internal(handler):
    async def route(request: web.Request) -> web.StreamResponse:
        cluster: AppCluster = request.app[CLUSTER]
        if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, ""), cluster.token):
            return error_response(403, "an internal route of the cluster (it needs the cluster key)",
                                  request[REQUEST_ID])
        app_id = request.match_info["id"]
        if not cluster.owns(app_id):
            return error_response(503, f"node {cluster.node} no longer runs app {app_id}", request[REQUEST_ID])
        headers = request.headers.copy()
        headers.popall(TOKEN_HEADER, None)  # the app never sees the cluster's token
        request = request.clone(headers=headers)
        request[APP_NODE] = cluster.node
        return await handler(request)
    return route
