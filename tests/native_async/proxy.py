"""A TCP proxy between the client and the broker that a test can freeze or cut.

Freezing stops forwarding in both directions while keeping both sockets open: the broker looks
silent to the client, as a dead peer does, so heartbeats run out. Cutting closes both sockets:
the client sees its stream end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc


class Proxy:
    def __init__(
        self, listener: anyio.abc.Listener[anyio.abc.SocketStream], target_port: int
    ) -> None:
        self.listener = listener
        self.target_port = target_port
        self.frozen = False
        self._streams: list[anyio.abc.SocketStream] = []
        self._cut = anyio.Event()

    @property
    def port(self) -> int:
        port: int = self.listener.extra(anyio.abc.SocketAttribute.local_port)
        return port

    def cut(self) -> None:
        """Cut the connections open now; later ones (a reconnection) are forwarded."""
        self._cut.set()
        self._cut = anyio.Event()

    async def _pipe(self, source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream) -> None:
        try:
            async for data in source:
                while self.frozen:
                    await anyio.sleep(0.05)
                await sink.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def handle(self, client: anyio.abc.SocketStream) -> None:
        cut = self._cut
        try:
            server = await anyio.connect_tcp("127.0.0.1", self.target_port)
        except OSError:
            await client.aclose()  # no broker there: the client sees its stream end
            return
        async with client, server, anyio.create_task_group() as tg:
            tg.start_soon(self._pipe, client, server)
            tg.start_soon(self._pipe, server, client)
            await cut.wait()
            tg.cancel_scope.cancel()


@asynccontextmanager
async def proxy_to(target_port: int) -> AsyncIterator[Proxy]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    proxy = Proxy(listener, target_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy.handle)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()
