"""The lifecycle methods every session serves (docs/protocol.md, Lifecycle)."""

from __future__ import annotations

from yamabiko.protocol import errors
from yamabiko.schema.base import Empty, EmptyResult
from yamabiko.schema.session import (
    CANCELLED,
    INITIALIZE,
    INITIALIZED,
    MCP_PROTOCOLS,
    PING,
    SESSION_REFRESH,
    YAMABIKO_PROTOCOL,
    CancelledParams,
    Implementation,
    InitializeParams,
    InitializeResult,
    Limits,
    RefreshParams,
    RefreshResult,
)
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context
from yamabiko.sessions.state import State

router = Router()

_EMPTY = EmptyResult()


@router.method(PING, inline=True)
async def ping(ctx: Context, params: Empty) -> EmptyResult:
    return _EMPTY


@router.method(INITIALIZE, inline=True)
async def initialize(ctx: Context, params: InitializeParams) -> InitializeResult:
    session = ctx.session
    if session.state is not State.NEW:
        why = "is already initialized" if session.state is State.READY else "is closing"
        raise errors.InvalidRequest(f"invalid request: the session {why}")
    # Negotiation as MCP does it: the client's version if we speak it, else our newest
    # one for that face; the client decides whether to go on.
    requested = params.protocol_version
    if requested == YAMABIKO_PROTOCOL or requested in MCP_PROTOCOLS:
        version = requested
    else:
        version = MCP_PROTOCOLS[0] if session.subprotocol == "mcp" else YAMABIKO_PROTOCOL
    session.initialized(version, params.client_info, params.capabilities)
    config = session.config
    return InitializeResult(
        protocol_version=version,
        server_info=Implementation(name=config.server_name, version=config.server_version),
        capabilities={
            "tools": {"listChanged": False},
            "resources": {"listChanged": False, "subscribe": True},
            "prompts": {"listChanged": False},
            "completions": {},
            "logging": {},
            "experimental": {"yamabiko": {"version": YAMABIKO_PROTOCOL}},
        },
        session_id=session.id,
        limits=Limits(
            max_message_bytes=config.max_message_bytes,
            max_running_requests=config.max_running_requests,
            max_subscriptions=config.max_subscriptions,
            outbound_queue_bytes=config.outbound_queue_bytes,
            ping_interval_ms=int(config.ping_interval_s * 1000),
            requests_per_second=config.requests_per_second,
            request_burst=config.request_burst,
            max_batch_items=config.max_batch,
            max_audio_streams=config.max_audio_streams,
            max_documents=config.max_documents,
        ),
        instructions=config.instructions,
    )


@router.method(INITIALIZED, inline=True)
async def initialized(ctx: Context, params: Empty) -> None:
    ctx.session.client_ready = True


@router.method(CANCELLED, inline=True)
async def cancelled(ctx: Context, params: CancelledParams) -> None:
    # Unknown or finished ids are ignored: the race with the response is expected.
    ctx.session.cancel_request(params.request_id)


@router.method(SESSION_REFRESH)
async def refresh(ctx: Context, params: RefreshParams) -> RefreshResult:
    session = ctx.session
    if session.verify_token is None:
        raise errors.Unauthorized("this server cannot verify tokens")
    identity = await session.verify_token(params.token)  # raises Unauthorized
    if identity.sub != session.identity.sub or identity.tid != session.identity.tid:
        raise errors.Unauthorized("token refused: it names another user or tenant")
    session.identity = identity
    session.expiry_warned = False
    return RefreshResult(expires_at=session.expires_at())
