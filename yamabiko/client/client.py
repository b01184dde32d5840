"""The async Python client: the same sans-I/O peer over a ``websockets`` client.

    async with await Client.connect(url, token=token) as client:
        await client.call("ping")
        async for note in client.notifications("stream/delta"):
            ...

Requests the server sends (``client/applyActions``, MCP ``sampling/createMessage``...)
are answered by handlers registered with :meth:`Client.on_request`; a request with no
handler gets -32601. Notifications go to every open :meth:`Client.notifications`
iterator whose filter matches, in arrival order; binary frames (audio) go to
:meth:`Client.binary_frames`.

Our requests wait in the peer's one table (:attr:`Peer.pending
<yamabiko.protocol.peer.Peer.pending>`); when the connection ends, each one still waiting
fails with :class:`~yamabiko.protocol.errors.ConnectionClosed`, which says the close code
and whose side closed (``local``: this client did).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from yamabiko.protocol import errors
from yamabiko.protocol.messages import (
    Batch,
    Dropped,
    Invalid,
    Notification,
    Request,
    Response,
    encode_error,
    encode_notification,
    encode_result,
)
from yamabiko.protocol.peer import Peer

log = logging.getLogger("yamabiko.client")

T = TypeVar("T")
RequestHandler = Callable[[Any], Awaitable[Any]]

DEFAULT_PROTOCOL = "yamabiko/1"


class ServerNotification(msgspec.Struct, frozen=True):
    method: str
    params: Any


class _Subscription:
    def __init__(self, methods: frozenset[str] | None) -> None:
        self.methods = methods
        self.queue: asyncio.Queue[ServerNotification | None] = asyncio.Queue()


class Client:
    """One connection to a Yamabiko server."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.peer = Peer(max_batch=1 << 30)
        self.initialize_result: dict[str, Any] | None = None
        self._closing = False
        self._handlers: dict[str, RequestHandler] = {}
        self._subscriptions: list[_Subscription] = []
        self._binary: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        subprotocol: str | None = "yamabiko.v1",
        initialize: bool = True,
        protocol_version: str = DEFAULT_PROTOCOL,
        capabilities: dict[str, Any] | None = None,
        client_info: dict[str, str] | None = None,
        max_size: int | None = 16 << 20,
        open_timeout: float = 10.0,
    ) -> Client:
        """Connect, and unless told not to, initialize the session."""
        headers = {"Authorization": f"Bearer {token}"} if token else None
        ws = await connect(
            url,
            additional_headers=headers,
            subprotocols=[subprotocol] if subprotocol else None,  # type: ignore[list-item]
            compression=None,
            max_size=max_size,
            open_timeout=open_timeout,
        )
        client = cls(ws)
        if initialize:
            try:
                await client.initialize(
                    protocol_version=protocol_version,
                    capabilities=capabilities,
                    client_info=client_info,
                )
            except BaseException:
                await client.close()
                raise
        return client

    async def initialize(
        self,
        *,
        protocol_version: str = DEFAULT_PROTOCOL,
        capabilities: dict[str, Any] | None = None,
        client_info: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        result = await self.call(
            "initialize",
            {
                "protocolVersion": protocol_version,
                "clientInfo": client_info or {"name": "yamabiko-client", "version": "0.1.0"},
                "capabilities": capabilities or {},
            },
        )
        await self.notify("notifications/initialized")
        self.initialize_result = result
        return result  # type: ignore[no-any-return]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closing = True
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        for task in list(self._tasks):
            task.cancel()

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed (what the server sent)."""
        code = self.ws.close_code  # 1006 (never sent on the wire): no close frame came
        return None if code == 1006 else code

    async def wait_closed(self) -> None:
        await self.ws.wait_closed()

    # Calls

    async def call(
        self,
        method: str,
        params: Any = None,
        *,
        result_type: type[T] | None = None,
        timeout: float | None = 30.0,
    ) -> Any:
        """Call ``method`` and return its result (decoded as ``result_type`` if given).

        Raises :class:`~yamabiko.protocol.errors.RemoteError` for an error response.
        """
        request_id, waiter = await self.start(method, params)
        return await self.result(request_id, waiter, result_type=result_type, timeout=timeout)

    async def start(self, method: str, params: Any = None) -> tuple[int, asyncio.Future[Response]]:
        """Send a request without waiting: its id (to cancel it) and its future."""
        if self._reader.done():
            raise self._closed_outcome()
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        request_id, data = self.peer.request(method, {} if params is None else params, waiter)
        try:
            await self.ws.send(data, text=True)
        except ConnectionClosed:
            self.peer.forget(request_id)
            raise self._closed_outcome() from None
        return request_id, waiter

    async def result(
        self,
        request_id: int,
        waiter: asyncio.Future[Response],
        *,
        result_type: type[T] | None = None,
        timeout: float | None = 30.0,
    ) -> Any:
        """Wait for the response of a request made with :meth:`start`.

        Raises :class:`~yamabiko.protocol.errors.ConnectionClosed` when the connection
        ends before the answer.
        """
        try:
            async with asyncio.timeout(timeout):
                response = await waiter
        finally:
            self.peer.forget(request_id)
        if response.error is not None:
            err = response.error
            raise errors.RemoteError(err.code, err.message, err.data)
        raw = response.result or b"null"
        if result_type is None:
            return msgspec.json.decode(raw)
        return msgspec.json.decode(raw, type=result_type)

    async def cancel(self, request_id: int, reason: str | None = None) -> None:
        """Ask the server to cancel one of our running requests."""
        params: dict[str, Any] = {"requestId": request_id}
        if reason:
            params["reason"] = reason
        await self.notify("notifications/cancelled", params)

    async def notify(self, method: str, params: Any = None) -> None:
        await self.ws.send(encode_notification(method, {} if params is None else params), text=True)

    async def send_raw(self, data: bytes | str) -> None:
        """Send bytes as they are (for testers probing the server)."""
        await self.ws.send(data)

    # Server -> client

    def on_request(self, method: str) -> Callable[[RequestHandler], RequestHandler]:
        """Register the handler answering the server's ``method`` requests."""

        def register(handler: RequestHandler) -> RequestHandler:
            self._handlers[method] = handler
            return handler

        return register

    async def notifications(self, *methods: str) -> AsyncIterator[ServerNotification]:
        """Iterate over server notifications (of ``methods``, or all), until close.

        The subscription starts when iteration does: open it before sending the request
        whose notifications you want (see :meth:`subscribe`).
        """
        sub = self.subscribe(*methods)
        async for note in self.iterate(sub):
            yield note

    def subscribe(self, *methods: str) -> _Subscription:
        """Start collecting notifications now; read them with :meth:`iterate`/:meth:`next`."""
        sub = _Subscription(frozenset(methods) if methods else None)
        self._subscriptions.append(sub)
        return sub

    async def iterate(self, sub: _Subscription) -> AsyncIterator[ServerNotification]:
        try:
            while True:
                note = await sub.queue.get()
                if note is None:
                    return
                yield note
        finally:
            with contextlib.suppress(ValueError):
                self._subscriptions.remove(sub)

    async def next(self, sub: _Subscription, timeout: float = 5.0) -> ServerNotification:
        """The next notification of ``sub``; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            note = await sub.queue.get()
        if note is None:
            raise ConnectionError("connection closed")
        return note

    async def binary_frames(self) -> AsyncIterator[bytes]:
        while True:
            frame = await self._binary.get()
            if frame is None:
                return
            yield frame

    # Reading

    async def _read_loop(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes) and message[:2] == b"YA":
                    self._binary.put_nowait(message)
                    continue
                await self._dispatch(self.peer.receive(message))
        except ConnectionClosed:
            pass
        finally:
            self.peer.fail_pending(self._closed_outcome())
            for sub in self._subscriptions:
                sub.queue.put_nowait(None)
            self._binary.put_nowait(None)

    async def _dispatch(self, event: Any) -> None:
        if isinstance(event, Batch):
            for item in event.items:
                await self._dispatch(item)
        elif isinstance(event, Response):
            pass  # the peer handed it to its waiter
        elif isinstance(event, Notification):
            note = ServerNotification(event.method, msgspec.json.decode(event.params))
            for sub in self._subscriptions:
                if sub.methods is None or event.method in sub.methods:
                    sub.queue.put_nowait(note)
        elif isinstance(event, Request):
            task = asyncio.get_running_loop().create_task(self._answer(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, Invalid):
            log.warning("server sent an invalid message: %s", event.message)
        else:
            assert isinstance(event, Dropped)
            log.debug("dropped: %s", event.reason)

    def _closed_outcome(self) -> errors.ConnectionClosed:
        """What a request of ours gets when the connection is gone."""
        code = self.close_code
        return errors.ConnectionClosed(
            code, self.ws.close_reason or "" if code is not None else "", local=self._closing
        )

    async def _answer(self, request: Request) -> None:
        handler = self._handlers.get(request.method)
        if handler is None:
            data = encode_error(
                request.id, errors.METHOD_NOT_FOUND, f"method not found: {request.method}"
            )
        else:
            try:
                result = await handler(msgspec.json.decode(request.params))
                data = encode_result(request.id, result)
            except errors.YamabikoError as exc:
                data = encode_error(request.id, errors.wire_code(exc), exc.message, exc.data)
            except Exception:
                log.exception("client handler for %s failed", request.method)
                data = encode_error(request.id, errors.INTERNAL_ERROR, "internal error")
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(data, text=True)
