"""Wiring: settings -> data dir -> token verifier -> method table -> :class:`App`.

The only place that knows the whole; everything it builds is handed on as a value.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from yamabiko import __version__
from yamabiko.engines.audio.base import AudioEngine
from yamabiko.engines.ghost.base import GhostEngine
from yamabiko.engines.llm import EngineRegistry
from yamabiko.engines.tools.egress import EgressPolicy
from yamabiko.engines.tools.mcp import McpClients
from yamabiko.handlers import routers as handler_routers
from yamabiko.schema.methods import METHODS
from yamabiko.schema.objects import AuditOutcome, TenantId
from yamabiko.schema.openrpc import PATH as OPENRPC_PATH
from yamabiko.server.app import App, Closer, ServerOptions
from yamabiko.server.auth import TokenVerifier
from yamabiko.server.datadir import DataDir, ensure_data_dir
from yamabiko.server.devtoken import DevTokens
from yamabiko.server.retention import AuditRetention
from yamabiko.server.settings import Settings
from yamabiko.services.container import Services
from yamabiko.services.generation import Generations
from yamabiko.services.ghost_models import GhostModels
from yamabiko.services.orphans import Orphans
from yamabiko.services.synthesis import AudioEngines, Syntheses
from yamabiko.services.watch import ConversationWatch
from yamabiko.sessions import lifecycle
from yamabiko.sessions.identity import Identity
from yamabiko.sessions.methods import MethodEntry, Router
from yamabiko.sessions.session import SessionConfig
from yamabiko.sessions.stats import Stats
from yamabiko.store import open_store
from yamabiko.store.broker import Broker, MemoryBroker
from yamabiko.store.budget import Budget
from yamabiko.store.catalogue import CachedCatalogue
from yamabiko.store.ids import utc_now
from yamabiko.store.locks import Locks, MemoryLocks, RedisLocks
from yamabiko.store.rate_shares import LocalShareRateLimiter
from yamabiko.store.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    TenantRateLimits,
)
from yamabiko.store.redis_broker import RedisBroker
from yamabiko.store.redis_clients import check_reachable, pooled_client
from yamabiko.store.revocations import RevokedTokens
from yamabiko.store.signals import MemorySignals, RedisSignals, Signals

log = logging.getLogger("yamabiko.server")


def session_config(settings: Settings) -> SessionConfig:
    return SessionConfig(
        max_message_bytes=settings.max_message_bytes,
        max_running_requests=settings.max_running_requests,
        max_subscriptions=settings.max_subscriptions,
        max_audio_streams=settings.max_audio_streams,
        max_documents=settings.max_documents,
        max_batch=settings.max_batch,
        outbound_queue_bytes=settings.outbound_queue_bytes,
        ping_interval_s=settings.ping_interval_s,
        requests_per_second=settings.requests_per_second,
        request_burst=settings.request_burst,
        slow_consumer_s=settings.slow_consumer_timeout_s,
        server_version=__version__,
    )


def server_options(settings: Settings) -> ServerOptions:
    return ServerOptions(
        host=settings.host,
        port=settings.port,
        max_message_bytes=settings.max_message_bytes,
        ping_interval_s=settings.ping_interval_s,
        ping_timeout_s=settings.ping_timeout_s,
        compression=settings.compression,
        allowed_origins=settings.allowed_origins,
        max_connections_per_user=settings.max_connections_per_user,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        max_mcp_sessions_per_user=settings.max_mcp_sessions_per_user,
        handshakes_per_second=settings.handshakes_per_second,
        handshake_burst=settings.handshake_burst,
        mcp_session_idle_s=settings.mcp_session_idle_s,
    )


def dev_tokens(settings: Settings, data_dir: DataDir | None) -> DevTokens | None:
    """Playground tokens (``GET /dev/token``) only in dev mode with the data dir's own
    secret: a server with a configured JWT key never mints (docs/playground.md)."""
    if not settings.dev_mode or not settings.uses_data_dir_secret or data_dir is None:
        return None
    return DevTokens(data_dir.jwt_secret)


def build_verifier(
    settings: Settings, data_dir: DataDir | None, revoked: RevokedTokens | None
) -> TokenVerifier:
    """The verifier for the configured keys; the data dir's secret only when none is."""
    public_key = None
    if settings.jwt_public_key_file:
        public_key = Path(settings.jwt_public_key_file).read_bytes()
    secret = settings.jwt_secret
    if secret is None and public_key is None and not settings.jwt_jwks_url:
        assert data_dir is not None, "no JWT key configured and no data dir"
        secret = data_dir.jwt_secret
    return TokenVerifier(
        secret=secret,
        public_key_pem=public_key,
        jwks_url=settings.jwt_jwks_url,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway_s=settings.jwt_leeway_s,
        revoked=revoked,
    )


def rate_limiter(settings: Settings) -> tuple[RateLimiter, Closer | None]:
    """Redis buckets shared by every node when ``YAMABIKO_REDIS_URL`` is set, else
    in-process ones; and what closes it."""
    user_rate, user_burst = settings.requests_per_second, settings.request_burst
    tenant_rate, tenant_burst = settings.tenant_requests_per_second, settings.tenant_request_burst
    if settings.redis_url:
        limiter = RedisRateLimiter.from_url(
            settings.redis_url, user_rate=user_rate, user_burst=user_burst,
            tenant_rate=tenant_rate, tenant_burst=tenant_burst,
            timeout_s=max(1.0, settings.redis_pool_timeout_s),
        )  # fmt: skip
        # Tokens taken in chunks and spent in process: no Redis round trip per request
        # (docs/decisions/0047-local-rate-shares.md).
        shares = LocalShareRateLimiter(limiter)
        return shares, shares.aclose
    memory = MemoryRateLimiter(
        user_rate=user_rate, user_burst=user_burst,
        tenant_rate=tenant_rate, tenant_burst=tenant_burst,
    )  # fmt: skip
    return memory, None


def session_rate_limiter(
    limiter: RateLimiter, tenant_limits: TenantRateLimits
) -> Callable[[Identity, str], Awaitable[int]]:
    """Adapt a store limiter to the session's hook: the tenant's own limits (from its
    row, cached) replace the server's defaults for its bucket, and each method is
    charged its ``cost`` from the contract (1 for a method it does not list)."""
    overrides = TenantRateLimits.overrides
    costs = {name: row.cost for name, row in METHODS.items()}

    async def admit(identity: Identity, method: str) -> int:
        own = await tenant_limits.get(identity.tid)
        cost = costs.get(method, 1.0)
        return await limiter.admit(identity.tid, identity.sub, cost=cost, **overrides(own))

    return admit


async def stream_backends(settings: Settings) -> tuple[Broker, Locks, Signals, list[Closer]]:
    """The broker, locks and signals: through Redis when ``YAMABIKO_REDIS_URL`` is set
    (any node serves any stream), else in process; and what closes them, in order."""
    retention, max_items = settings.stream_retention_s, settings.stream_max_items
    if settings.redis_url:
        url = settings.redis_url
        await check_reachable(url, setting="YAMABIKO_REDIS_URL")
        broker = RedisBroker.from_url(
            url,
            retention_s=retention,
            audio_retention_s=settings.stream_audio_retention_s,
            max_items=max_items,
            max_connections=settings.redis_max_connections,
            pool_timeout_s=settings.redis_pool_timeout_s,
            lease_s=settings.stream_lease_s,
        )
        locks_client = pooled_client(
            url,
            max_connections=settings.redis_max_connections,
            pool_timeout_s=settings.redis_pool_timeout_s,
        )
        signals = await RedisSignals.open(url)
        return (
            broker,
            RedisLocks(locks_client),
            signals,
            [signals.close, broker.close, locks_client.aclose],
        )
    memory = MemoryBroker(
        retention_s=retention,
        audio_retention_s=settings.stream_audio_retention_s,
        history_bytes=settings.stream_history_bytes,
        max_items=max_items,
    )
    return memory, MemoryLocks(), MemorySignals(), [memory.close]


async def sweep_orphans(orphans: Orphans, started_at: datetime, *, delay_s: float) -> None:
    """Finish the messages that a node which died left ``streaming`` (docs/streams.md,
    "When a node dies"). With shared streams it waits ``delay_s`` first, so that the
    lease of a node that died just before this one started has lapsed (a live node's
    never does)."""
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    try:
        finished = await orphans.sweep(before=started_at)
    except Exception:
        log.warning("the sweep of messages left streaming failed", exc_info=True)
        return
    if finished:
        log.warning("finished %d messages left streaming by a node that stopped", finished)


def ghost_engines(settings: Settings, registry: EngineRegistry) -> dict[str, GhostEngine]:
    """``ngram`` always; ``llm`` on the configured (or default) model; ``onnx`` when a
    model dir is configured (loaded at start, so a bad dir fails the start)."""
    from yamabiko.engines.ghost.llm import LLMGhostEngine
    from yamabiko.engines.ghost.ngram import NgramGhostEngine

    llm_model = settings.ghost_llm_model
    ngram = NgramGhostEngine()
    ngram.warm()  # ~0.5 s, once per process: not on the first keystroke
    engines: dict[str, GhostEngine] = {
        "ngram": ngram,
        "llm": LLMGhostEngine(registry, lambda: llm_model or registry.default_model()),
    }
    if settings.ghost_onnx_model_dir:
        from yamabiko.engines.ghost.onnx import OnnxGhostEngine

        engines["onnx"] = OnnxGhostEngine(Path(settings.ghost_onnx_model_dir).expanduser())
    return engines


def audio_engines(settings: Settings, env: Mapping[str, str]) -> AudioEngines:
    """``singer`` always; ``tts`` when the server has an OpenAI key or base URL;
    ``onnx`` when a model dir is configured (loaded at start, so a bad dir fails it)."""
    from yamabiko.engines.audio.singer import SingerEngine

    engines: dict[str, AudioEngine] = {"singer": SingerEngine()}
    key, base_url = env.get("OPENAI_API_KEY") or None, env.get("OPENAI_BASE_URL") or None
    if key or base_url:
        from yamabiko.engines.audio.tts import TtsEngine

        engines["tts"] = TtsEngine(api_key=key, base_url=base_url, model=settings.audio_tts_model)
    if settings.audio_onnx_model_dir:
        from yamabiko.engines.audio.onnx import OnnxSingerEngine

        engines["onnx"] = OnnxSingerEngine.open(Path(settings.audio_onnx_model_dir).expanduser())
    # Our module only: piper-tts (GPL) is imported by the engine on its first request.
    from yamabiko.engines.audio import piper

    if piper.installed(settings.audio_piper_model):
        engines[piper.NAME] = piper.PiperEngine(model=settings.audio_piper_model)
    if settings.speech_engine not in engines:
        # Not replaced by one that is there: text then gets -32010 naming what is missing.
        log.warning(
            "YAMABIKO_SPEECH_ENGINE names an audio engine this server does not have",
            extra={"engine": settings.speech_engine, "engines": sorted(engines)},
        )
    return AudioEngines(
        engines, max_seconds=settings.max_audio_seconds, speech_engine=settings.speech_engine
    )


def provider_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The provider variables (keys and base URLs) of ``env``: all the engines see."""
    return {k: v for k, v in env.items() if k.endswith(("_API_KEY", "_BASE_URL"))}


def method_table(routers: Sequence[Router]) -> Mapping[str, MethodEntry]:
    """Every served method; a name registered twice is an error."""
    table = Router().include(lifecycle.router, *handler_routers(), *routers)
    return dict(table.entries)


async def build_app(
    settings: Settings,
    *,
    routers: Sequence[Router] = (),
    revoked: RevokedTokens | None = None,
    provider_env: Mapping[str, str] | None = None,
    ghost: Mapping[str, GhostEngine] | None = None,
) -> App:
    """A ready-to-start node for ``settings``: opens (and migrates) the store, the
    broker and the engines.

    ``routers`` add methods (tests, plugins); ``revoked`` replaces the store's
    revocation list (tests); ``provider_env`` holds the provider keys and base URLs
    (``OPENAI_API_KEY``...; default: the process environment's); ``ghost`` adds or
    replaces ghost engines by name (tests).
    """
    data_dir = ensure_data_dir(settings.data_path) if settings.needs_data_dir else None
    keys = list(settings.encryption_keys)
    if not keys:
        assert data_dir is not None  # needs_data_dir is true without encryption keys
        keys = [data_dir.fernet_key]
    store = await open_store(settings.effective_database_url, encryption_keys=keys)
    revoked = revoked if revoked is not None else store.revocations

    async def audit(
        tenant_id: str | None,
        subject: str | None,
        action: str,
        outcome: str,
        detail: dict[str, Any],
    ) -> None:
        await store.audit.record(
            TenantId(tenant_id) if tenant_id is not None else None,
            subject=subject,
            action=action,
            outcome=cast(AuditOutcome, outcome),
            detail=detail,
        )

    started_at = utc_now()
    try:
        broker, locks, signals, close_streams = await stream_backends(settings)
    except BaseException:
        await store.close()
        raise
    limiter, close_limiter = rate_limiter(settings)
    tenant_limits = TenantRateLimits(store)
    providers = provider_environment(os.environ if provider_env is None else provider_env)
    engines = EngineRegistry(
        providers,
        scripted_root=settings.scripts_path,
    )
    budget = Budget(store)
    stats = Stats()
    watch = ConversationWatch(signals)
    generations = Generations(
        store=store,
        budget=budget,
        broker=broker,
        locks=locks,
        signals=signals,
        stats=stats,
        on_message=watch.changed,
    )

    ghost_models = GhostModels(
        store, {**ghost_engines(settings, engines), **(ghost or {})}, stats=stats
    )

    syntheses = Syntheses(broker=broker, signals=signals)
    orphans = Orphans(store=store, broker=broker)

    async def producer_lost(stream_id: str) -> None:
        await orphans.end(stream_id)

    broker.on_lost(producer_lost)
    sweeper: asyncio.Task[None] | None = None
    if settings.redis_url:
        # Another node may still produce streams: after a lease has had time to lapse.
        sweeper = asyncio.create_task(
            sweep_orphans(orphans, started_at, delay_s=settings.stream_lease_s + 0.5),
            name="orphan-sweep",
        )
    else:
        # Streams die with their node: whatever was streaming is finished before serving.
        await sweep_orphans(orphans, started_at, delay_s=0.0)

    async def stop_sweeper() -> None:
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait({sweeper})

    mcp = McpClients(
        allowlist=settings.mcp_stdio_allowlist, egress=EgressPolicy(settings.mcp_egress_allow)
    )
    audio = audio_engines(settings, providers)

    async def close_generations() -> None:
        await asyncio.gather(
            generations.aclose(settings.shutdown_timeout_s),
            syntheses.aclose(settings.shutdown_timeout_s),
        )

    # In order: running work stores its results before anything it uses closes.
    closers: list[Closer] = [
        stop_sweeper,
        close_generations,
        ghost_models.aclose,
        engines.aclose,
        audio.aclose,
        mcp.aclose,
        *close_streams,
        store.close,
    ]
    if close_limiter is not None:
        closers.append(close_limiter)
    return App(
        server_options(settings),
        verifier=build_verifier(settings, data_dir, revoked),
        methods=method_table(routers),
        stats=stats,
        session_config=session_config(settings),
        openrpc=OPENRPC_PATH.read_bytes(),
        rate_limiter=session_rate_limiter(limiter, tenant_limits),
        services=Services(
            store=store,
            budget=budget,
            revocations=revoked,
            tenant_limits=tenant_limits,
            engines=engines,
            broker=broker,
            locks=locks,
            generations=generations,
            ghost=ghost_models,
            catalogue=CachedCatalogue(store),
            audio=audio,
            syntheses=syntheses,
            mcp=mcp,
            watch=watch,
            orphans=orphans,
        ),
        audit=audit,
        revoked=revoked,
        ready_checks=[store.ping, broker.ping],
        closers=closers,
        background=[AuditRetention(store.audit, settings.audit_retention_days).run],
        dev_tokens=dev_tokens(settings, data_dir),
    )
