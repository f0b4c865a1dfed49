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
all, plus the app's own start. An owner that has not renewed for ``FENCE_AFTER`` s (a watchdog
on time alone: a renewal may hang on an unreachable database) stops its apps before its leases
can expire, so an app does not run on two nodes at once. A node
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
# no renewal sent for this long (counted from when the last successful one was sent): stop this
# node's apps, so they are down (STOP_GRACE included) before the lease can expire
FENCE_AFTER = LEASE_TTL / 2
WATCH_EVERY = 0.25
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
        self._watch: asyncio.Task | None = None
        self.session: aiohttp.ClientSession | None = None

    def owns(self, app_id: str) -> bool:
        return app_id in self.owned

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(auto_decompress=False,
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=3))
        await self.renew()
        self._task = asyncio.create_task(self._loop(), name="app leases")
        self._watch = asyncio.create_task(self._watchdog(), name="app lease watchdog")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self.renew()
            except Exception:
                log.exception("renewing the app leases failed")

    async def _watchdog(self) -> None:
        """Fence on time alone: a renewal may itself hang on an unreachable database."""
        while True:
            await asyncio.sleep(WATCH_EVERY)
            late = time.monotonic() - self._renewed
            if self.owned and late > FENCE_AFTER:
                log.error("no app lease renewal for %.1f s (the database is unreachable): stopping this node's "
                          "apps before the leases expire and another node takes them", late)
                self.owned, self.leases = set(), {}
                try:
                    await self._stop_unowned()
                except Exception:
                    log.exception("stopping the apps of an expired lease failed")

    async def renew(self) -> None:
        sent = time.monotonic()
        try:
            owned = await asyncio.to_thread(self.records.claim, self.node, self.instance, self.url, LEASE_TTL)
            leases = await asyncio.to_thread(self.records.leases)
        except Exception as exc:  # noqa: BLE001 (the database is away: the watchdog fences; keep trying)
            log.warning("could not renew the app leases: %s", exc)
            return
        if time.monotonic() - sent > FENCE_AFTER:
            return  # too slow to trust: the lease may be close to its end; the next renewal decides
        self._renewed = sent
        changed = owned != self.owned
        self.owned, self.leases = owned, leases
        if changed and self.manager is not None:
            if owned:
                log.info("node %s runs app(s) %s", self.node, ", ".join(sorted(owned)))
            try:
                await self.manager.reload()
            except Exception:  # noqa: BLE001 (no records without the database: still stop what is not ours)
                await self._stop_unowned()
                raise

    async def _stop_unowned(self) -> None:
        manager = self.manager
        async with manager._lock:
            for app_id in [a for a in manager.apps if not self.owns(a)]:
                await manager.apps.pop(app_id).stop()

    async def close(self) -> None:
        for task in (self._task, self._watch):
            if task is not None:
                task.cancel()
                await asyncio.wait([task])
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
