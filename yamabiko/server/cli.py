"""The ``yamabiko`` command: serve, token, call, wait, script, mcp-bridge.

Exit codes: 0 success; 1 the call got an error response or failed; 2 bad usage or bad
settings (the message names the setting).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from yamabiko import __version__

EXIT_ERROR = 1
EXIT_USAGE = 2


def _settings_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to listen on (YAMABIKO_HOST)")
    parser.add_argument("--port", help="port (YAMABIKO_PORT, default 8765)")
    parser.add_argument("--data-dir", help="data dir (YAMABIKO_DATA_DIR, default ./.yamabiko)")
    parser.add_argument("--config", help="TOML settings file (YAMABIKO_CONFIG)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")


def _store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data dir (YAMABIKO_DATA_DIR, default ./.yamabiko)")
    parser.add_argument("--config", help="TOML settings file (YAMABIKO_CONFIG)")
    parser.add_argument("--database-url", help="overrides YAMABIKO_DATABASE_URL")


def _connect_args(parser: argparse.ArgumentParser, *, data_dir_help: str) -> None:
    """How a client command reaches a server: ``--url``, and ``--token`` or a token
    minted from ``--data-dir`` for ``--sub``/``--tenant``/``--scope``
    (see :func:`_client_token`)."""
    parser.add_argument("--url", default=None, help="server URL (default ws://127.0.0.1:8765/ws)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--token", help="bearer token (or YAMABIKO_TOKEN)")
    group.add_argument("--data-dir", help=data_dir_help)
    parser.add_argument("--sub", default="cli", help="user for a token minted from --data-dir")
    parser.add_argument("--tenant", default="default", help="tenant for a minted token")
    parser.add_argument("--scope", default="chat agent ghost audio mcp", help="scopes if minted")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yamabiko", description="A real-time AI server: JSON-RPC 2.0 over one WebSocket."
    )
    parser.add_argument("--version", action="version", version=f"yamabiko {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    _settings_args(serve)
    serve.add_argument("--mcp-port", help="port of the MCP Streamable HTTP face")
    serve.add_argument(
        "--no-mcp-http",
        dest="mcp_http",
        action="store_const",
        const=False,
        default=None,
        help="do not serve the MCP HTTP face (YAMABIKO_MCP_HTTP=false)",
    )
    serve.add_argument(
        "--workers",
        help="worker processes sharing the port: N or auto, one per CPU (YAMABIKO_WORKERS, "
        "default 1); more than one needs YAMABIKO_REDIS_URL",
    )
    # Set by the supervisor on the workers it starts (yamabiko.server.supervisor).
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)

    token = sub.add_parser(
        "token",
        help="mint a token signed with the server's HS256 secret: YAMABIKO_JWT_SECRET (flag, "
        "env or TOML, as `serve` resolves it), else the data dir's",
    )
    token.add_argument("--data-dir", help="data dir (default ./.yamabiko or YAMABIKO_DATA_DIR)")
    token.add_argument("--config", help="TOML settings file (YAMABIKO_CONFIG)")
    token.add_argument("--sub", required=True, help="the user id")
    token.add_argument("--tenant", required=True, help="the tenant id")
    token.add_argument(
        "--scope", default="chat agent ghost audio mcp", help="space-separated scopes"
    )
    token.add_argument("--ttl", type=float, default=3600.0, help="lifetime in seconds")

    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    _store_args(migrate)

    rotate = sub.add_parser(
        "rotate-keys",
        help="re-encrypt every stored secret with the first of YAMABIKO_ENCRYPTION_KEYS",
    )
    _store_args(rotate)

    call = sub.add_parser("call", help="call one method and print its result as JSON")
    _connect_args(call, data_dir_help="mint a short-lived admin-less token from this dir")
    call.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait (for each stream item too)"
    )
    follow = call.add_mutually_exclusive_group()
    follow.add_argument(
        "--no-follow",
        dest="follow",
        action="store_const",
        const="none",
        default="text",
        help="print the result only, even when it starts a stream (chat/send)",
    )
    follow.add_argument(
        "--jsonl",
        dest="follow",
        action="store_const",
        const="jsonl",
        help="print the result, then each stream notification, as JSON lines",
    )
    call.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write what the call made to FILE: the audio of audio/synthesize (its frames "
        "joined: a whole file in the asked format), or the notes of music/generate as a "
        "MIDI file",
    )
    call.add_argument("method", help="the method, e.g. ping")
    call.add_argument("params", nargs="?", default=None, help="params as a JSON object")
    wait = sub.add_parser("wait", help="wait until a server answers /health/ready")
    wait.add_argument("--url", default=None, help="server URL (default ws://127.0.0.1:8765/ws)")
    wait.add_argument("--timeout", type=float, default=60.0, help="seconds to wait at most")
    _script_args(sub)
    _bridge_args(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: str = args.command
    if command == "serve":
        return _serve(args)
    if command == "token":
        return _token(args)
    if command in ("migrate", "rotate-keys"):
        return _store_command(command, args)
    if command == "script":
        return _script(args)
    if command == "mcp-bridge":
        return _mcp_bridge(args)
    if command == "wait":
        return _wait(args)
    return _call(args)


# wait


def _wait(args: argparse.Namespace) -> int:
    """Poll ``/health/ready`` until it answers 200 (exit 0) or ``--timeout`` passes
    (exit 1): for scripts that start a server in the background, then use it."""
    import time
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    url = args.url or os.environ.get("YAMABIKO_URL") or "ws://127.0.0.1:8765/ws"
    parts = urlsplit(url)
    scheme = "https" if parts.scheme in {"wss", "https"} else "http"
    ready = f"{scheme}://{parts.netloc}/health/ready"
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            with urllib.request.urlopen(ready, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return 0
        except (urllib.error.URLError, OSError):
            pass  # not listening yet, or not ready (503)
        if time.monotonic() >= deadline:
            print(f"yamabiko: {ready} not ready within {args.timeout} s", file=sys.stderr)
            return EXIT_ERROR
        time.sleep(0.2)


# serve


def _serve(args: argparse.Namespace) -> int:
    from yamabiko.server.datadir import DataDirError
    from yamabiko.server.logs import configure_logging
    from yamabiko.server.settings import SettingsError, load_settings
    from yamabiko.store.redis_clients import RedisUnreachable

    overrides: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "log_level": args.log_level,
        "mcp_port": args.mcp_port,
        "mcp_http": args.mcp_http,
        "workers": args.workers,
    }
    try:
        settings = load_settings(env=os.environ, config_file=args.config, overrides=overrides)
    except SettingsError as exc:
        print(f"yamabiko: bad settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    worker: int | None = args.worker_index
    if worker is None and settings.worker_count > 1:
        from yamabiko.server.supervisor import refusal

        reason = refusal(settings)
        if reason is not None:
            print(f"yamabiko: {reason}", file=sys.stderr)
            return EXIT_USAGE
    configure_logging(settings.log_level)
    # From here on stderr is JSON log lines only (docs/operations.md, Logs).
    log = logging.getLogger("yamabiko.server")
    if worker is not None:
        from yamabiko.server.supervisor import tag_worker_logs

        tag_worker_logs(worker)
    try:
        if worker is None and settings.worker_count > 1:
            return _run(_supervise(args, settings))
        return _run(_serve_async(settings, worker=worker))
    except DataDirError as exc:
        log.error("cannot use the data dir: %s", exc)
        return EXIT_USAGE
    except RedisUnreachable as exc:
        log.error("%s", exc, extra={"setting": "YAMABIKO_REDIS_URL"})
        return EXIT_USAGE
    except OSError as exc:
        log.error(
            "cannot listen on %s:%s: %s",
            settings.host,
            settings.port,
            exc.strerror,
            extra={"host": settings.host, "port": settings.port},
        )
        return EXIT_ERROR


async def _supervise(args: argparse.Namespace, settings: Any) -> int:
    """Run ``settings.worker_count`` workers (docs/deployment.md, Workers): the data
    dir is made, the migrations run and Redis is checked here, once, before any starts."""
    from yamabiko.server.datadir import ensure_data_dir
    from yamabiko.server.supervisor import Supervisor, worker_command
    from yamabiko.store import migrate
    from yamabiko.store.redis_clients import check_reachable

    if settings.needs_data_dir:
        ensure_data_dir(settings.data_path)
    await check_reachable(settings.redis_url, setting="YAMABIKO_REDIS_URL")
    await migrate(settings.effective_database_url)
    base = [sys.executable, "-m", "yamabiko.server.cli", "serve", "--host", settings.host]
    for flag, value in (
        ("--data-dir", args.data_dir),
        ("--config", args.config),
        ("--log-level", args.log_level),
    ):
        if value is not None:
            base += [flag, value]
    supervisor = Supervisor(
        worker_command(base),
        count=settings.worker_count,
        host=settings.host,
        port=settings.port,
        mcp_port=settings.mcp_port if settings.mcp_http else None,
        shutdown_timeout_s=settings.shutdown_timeout_s,
    )
    return await supervisor.run()


async def _serve_async(settings: Any, *, worker: int | None = None) -> int:
    """Serve one node, or one worker of a supervisor's (``worker``: its index): a worker
    shares the port with its siblings and drains when its supervisor goes."""
    log = logging.getLogger("yamabiko.server")
    from yamabiko.server.app import tune_gc
    from yamabiko.server.mcp_http import start_mcp_http
    from yamabiko.server.wiring import build_app

    app = await build_app(settings)
    try:
        await app.start(reuse_port=worker is not None)
    except OSError:
        # Close what build_app opened (the store's worker thread would otherwise keep
        # the process alive), so that a supervisor sees the exit and restarts us.
        for close in app.closers:
            await close()
        raise
    mcp = None
    if settings.mcp_http:
        mcp = await start_mcp_http(app, settings.host, settings.mcp_port)
        if mcp is None:
            log.error(
                "the MCP HTTP face could not start (its port is busy?): set YAMABIKO_MCP_PORT "
                "(--mcp-port) to a free port, or turn the face off with "
                "YAMABIKO_MCP_HTTP=false (--no-mcp-http)",
                extra={"port": settings.mcp_port},
            )
            await app.stop()
            return EXIT_ERROR
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if worker is not None:
        from yamabiko.server.supervisor import watch_parent

        await watch_parent(stop.set)
    # stdout carries these readiness lines and nothing else (scripts wait for them);
    # stderr carries JSON log lines only.
    url = f"ws://{settings.host}:{app.port}/ws"
    print(f"listening on {url}", flush=True)
    log.info(
        "listening",
        extra={"url": url, "mcpUrl": mcp.url if mcp is not None else None, "pid": os.getpid()},
    )
    if mcp is not None:
        print(f"mcp on {mcp.url}", flush=True)
    await stop.wait()
    log.info("shutting down")
    if mcp is not None:
        await mcp.stop()
    await app.stop()
    return 0


def _run(coro: Any) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return int(asyncio.run(coro))
    return int(uvloop.run(coro))


# mcp-bridge


def _bridge_args(sub: Any) -> None:
    bridge = sub.add_parser(
        "mcp-bridge", help="an MCP server over stdio relaying tools to a running server"
    )
    _connect_args(bridge, data_dir_help="mint a token (valid 24 h) from this dir's secret")
    renew = bridge.add_mutually_exclusive_group()
    renew.add_argument(
        "--token-file", help="reread this file for a token before the current one expires"
    )
    renew.add_argument(
        "--token-command", help="run this command (its stdout is a token) before expiry"
    )


def _mcp_bridge(args: argparse.Namespace) -> int:
    """Serve MCP on stdio until stdin closes; exit 1 if the server refuses or cannot be
    reached (stdout is the protocol's: messages go to stderr)."""
    from websockets.exceptions import InvalidStatus

    from yamabiko.server.mcp_bridge import TokenError, TokenSource, serve_stdio

    tokens: TokenSource
    if args.token_file or args.token_command:
        if args.token or args.data_dir:
            print("yamabiko: --token-file/--token-command replace --token and --data-dir",
                  file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
        tokens = TokenSource(file=args.token_file, command=args.token_command)
    else:
        token = _client_token(args, ttl_s=86400)
        if token is None:
            return EXIT_USAGE
        tokens = TokenSource(token=token)
    url = args.url or os.environ.get("YAMABIKO_URL") or "ws://127.0.0.1:8765/ws"
    try:
        asyncio.run(serve_stdio(url, tokens))
    except TokenError as exc:
        print(f"yamabiko: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
        print(f"yamabiko: refused: HTTP {exc.response.status_code} {body}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"yamabiko: cannot connect to {url}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        pass
    return 0


# migrate, rotate-keys


def _store_command(command: str, args: argparse.Namespace) -> int:
    from yamabiko.server.datadir import DataDirError
    from yamabiko.server.settings import SettingsError, load_settings

    overrides = {"data_dir": args.data_dir, "database_url": args.database_url}
    try:
        settings = load_settings(env=os.environ, config_file=args.config, overrides=overrides)
    except SettingsError as exc:
        print(f"yamabiko: bad settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if command == "migrate":
            return _run(_migrate(settings))
        return _run(_rotate_keys(settings))
    except DataDirError as exc:
        print(f"yamabiko: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def _migrate(settings: Any) -> int:
    from yamabiko.store import migrate

    applied = await migrate(settings.effective_database_url)
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("up to date")
    return 0


async def _rotate_keys(settings: Any) -> int:
    from yamabiko.server.datadir import ensure_data_dir
    from yamabiko.store import open_store
    from yamabiko.store.errors import SecretDecryptError

    keys = list(settings.encryption_keys)
    if not keys:
        keys = [ensure_data_dir(settings.data_path).fernet_key]
    store = await open_store(settings.effective_database_url, encryption_keys=keys)
    try:
        try:
            count = await store.secrets.reencrypt_all()
            servers = await store.mcp_servers.reencrypt_all()
        except SecretDecryptError as exc:
            await store.audit.record(
                None,
                subject="operator",
                action="keys.rotate",
                outcome="error",
                detail={"reason": str(exc)},
            )
            print(f"yamabiko: {exc}; nothing was changed", file=sys.stderr)
            return EXIT_ERROR
        await store.audit.record(
            None,
            subject="operator",
            action="keys.rotate",
            outcome="ok",
            detail={"secrets": count, "mcpServers": servers, "keys": len(keys)},
        )
    finally:
        await store.close()
    print(
        f"re-encrypted {count} secrets and the headers of {servers} MCP servers with the first key"
    )
    return 0


# token


def _token(args: argparse.Namespace) -> int:
    from yamabiko.server.auth import mint_token

    signing = _signing_settings(args)
    if signing is None:
        return EXIT_USAGE
    secret, audience, issuer = signing
    print(
        mint_token(
            secret,
            sub=args.sub,
            tenant=args.tenant,
            scopes=args.scope.split(),
            ttl_s=args.ttl,
            audience=audience,
            issuer=issuer,
        )
    )
    return 0


def _signing_settings(args: argparse.Namespace) -> tuple[str, str | None, str | None] | None:
    """The secret, audience and issuer a token must carry for the server these settings
    describe, resolved exactly as ``yamabiko serve`` resolves them (flags, environment,
    TOML file, then the data dir's secret). None, the reason printed, when the CLI
    cannot sign: the server verifies with a public key, or there is no data dir yet."""
    from yamabiko.server.datadir import DataDirError, read_data_dir
    from yamabiko.server.settings import SettingsError, load_settings

    try:
        settings = load_settings(
            env=os.environ,
            config_file=getattr(args, "config", None),
            overrides={"data_dir": args.data_dir},
        )
    except SettingsError as exc:
        print(f"yamabiko: bad settings: {exc}", file=sys.stderr)
        return None
    secret = settings.jwt_secret
    if secret is None and (settings.jwt_public_key_file or settings.jwt_jwks_url):
        print(
            "yamabiko: the server verifies tokens with a public key (YAMABIKO_JWT_PUBLIC_KEY_FILE "
            "or YAMABIKO_JWT_JWKS_URL): mint them with your identity provider, which holds the "
            "private key, and pass one with --token (docs/configuration.md, Authentication)",
            file=sys.stderr,
        )
        return None
    if secret is None:
        try:
            secret = read_data_dir(settings.data_path).jwt_secret
        except DataDirError as exc:
            print(f"yamabiko: {exc}", file=sys.stderr)
            return None
    return secret, settings.jwt_audience, settings.jwt_issuer


# call


def _call(args: argparse.Namespace) -> int:
    params: Any = None
    if args.params is not None:
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError as exc:
            print(f"yamabiko: params are not JSON: {exc}", file=sys.stderr)
            return EXIT_USAGE
    token = _client_token(args, ttl_s=300)
    if token is None:
        return EXIT_USAGE
    url = args.url or os.environ.get("YAMABIKO_URL") or "ws://127.0.0.1:8765/ws"
    try:
        return _run(
            _call_async(url, token, args.method, params, args.timeout, args.follow, args.output)
        )
    except BrokenPipeError:
        # The reader went away (`yamabiko call ... --jsonl | head`): stop quietly. Point
        # stdout at /dev/null so that the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _client_token(args: argparse.Namespace, *, ttl_s: float) -> str | None:
    """``--token`` or ``YAMABIKO_TOKEN``, else one minted for ``--sub``/``--tenant``/
    ``--scope`` with the server's secret, resolved as ``yamabiko token`` does (see
    :func:`_signing_settings`); None (the reason printed) if neither works."""
    token: str | None = args.token or os.environ.get("YAMABIKO_TOKEN")
    if token:
        return token
    if args.token is not None:
        print("yamabiko: --token is empty (was $TOKEN set?)", file=sys.stderr)
        return None
    from yamabiko.server.auth import mint_token

    signing = _signing_settings(args)
    if signing is None:
        return None
    secret, audience, issuer = signing
    return mint_token(
        secret,
        sub=args.sub,
        tenant=args.tenant,
        scopes=args.scope.split(),
        ttl_s=ttl_s,
        audience=audience,
        issuer=issuer,
    )


STREAM_NOTIFICATIONS = (
    "stream/delta",
    "stream/error",
    "stream/end",
    "audio/frame",
    "audio/end",
)
ENDS = frozenset({"stream/end", "audio/end"})


async def _call_async(
    url: str,
    token: str,
    method: str,
    params: Any,
    timeout: float,
    follow: str = "none",
    output: str | None = None,
) -> int:
    """Call ``method``; when its result names a ``streamId`` (``chat/send``,
    ``audio/synthesize``), follow that stream to its end: ``text`` prints a reply's text
    on stdout as it streams (the result and the end on stderr, as JSON), ``jsonl`` prints
    the result and each notification as a JSON line on stdout. ``output``: the audio's
    frames joined (a whole file), or a ``music/generate`` result as a MIDI file. Exit 1
    when the stream ends in error."""
    from websockets.exceptions import InvalidStatus

    from yamabiko.client import Client, RemoteError

    try:
        client = await Client.connect(url, token=token)
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
        print(f"yamabiko: refused: HTTP {exc.response.status_code} {body}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"yamabiko: cannot connect to {url}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    async with client:
        notes = client.subscribe(*STREAM_NOTIFICATIONS)
        try:
            result = await client.call(method, params, timeout=timeout)
        except RemoteError as exc:
            error = {"code": exc.wire_code, "message": exc.message}
            if exc.data is not None:
                error["data"] = exc.data
            print(json.dumps({"error": error}, ensure_ascii=False, indent=2))
            return EXIT_ERROR
        except TimeoutError:
            print(f"yamabiko: no answer within {timeout} s", file=sys.stderr)
            return EXIT_ERROR
        stream_id = result.get("streamId") if isinstance(result, dict) else None
        if (follow != "none" or output is not None) and isinstance(stream_id, str):
            audio: list[bytes] | None = [] if output is not None else None
            code = await _follow(
                client, notes, result, stream_id, timeout, jsonl=follow == "jsonl", audio=audio
            )
            if audio is not None and output is not None:
                return _write_output(output, b"".join(audio)) or code
            return code
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if output is not None:
        if method != "music/generate" or not isinstance(result, dict):
            print(f"yamabiko: --output: {method} makes nothing to write", file=sys.stderr)
            return EXIT_USAGE
        return _write_output(output, _midi_of(result, params or {}))
    return 0


def _midi_of(result: dict[str, Any], params: dict[str, Any]) -> bytes:
    """A ``music/generate`` result as a MIDI file, at the tempo and time signature asked."""
    from types import SimpleNamespace

    from yamabiko.engines.music.midi import to_midi

    signature = params.get("timeSignature") or "4/4"
    if isinstance(signature, str):
        top, _, bottom = signature.partition("/")
        signature = (int(top), int(bottom or 4))
    notes = [SimpleNamespace(**note) for note in result.get("notes", [])]
    return to_midi(
        notes,
        tempo=float(params.get("tempo") or 120),
        time_signature=(int(signature[0]), int(signature[1])),
        drums=result.get("kind") == "drums",
    )


def _write_output(path: str, data: bytes) -> int:
    try:
        with open(path, "wb") as out:
            out.write(data)
    except OSError as exc:
        print(f"yamabiko: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {len(data)} bytes to {path}", file=sys.stderr)
    return 0


async def _follow(
    client: Any,
    notes: Any,
    result: Any,
    stream_id: str,
    timeout: float,
    *,
    jsonl: bool,
    audio: list[bytes] | None = None,
) -> int:
    """Print the stream's items until it ends; audio frames' payloads are appended to
    ``audio`` (when given) rather than printed, unless ``jsonl``."""

    def line(value: Any, out: Any) -> None:
        print(json.dumps(value, ensure_ascii=False), file=out, flush=True)

    line(result, sys.stdout if jsonl else sys.stderr)
    errored = False
    while True:
        try:
            note = await client.next(notes, timeout)
        except TimeoutError:
            print(f"\nyamabiko: no stream item within {timeout} s", file=sys.stderr)
            return EXIT_ERROR
        except ConnectionError:
            print("\nyamabiko: the connection closed before the stream ended", file=sys.stderr)
            return EXIT_ERROR
        params = note.params
        if params.get("streamId") != stream_id:
            continue
        if note.method == "audio/frame" and audio is not None:
            audio.append(base64.b64decode(params["data"]))
        if jsonl:
            line({"method": note.method, "params": params}, sys.stdout)
        elif note.method == "stream/delta":
            sys.stdout.write(params["text"])
            sys.stdout.flush()
        elif note.method != "audio/frame":
            if note.method == "stream/end":
                sys.stdout.write("\n")
            line({note.method: params}, sys.stderr)
        errored = errored or note.method == "stream/error"
        if note.method in ENDS:
            failed = errored or params.get("finishReason") == "error"
            return EXIT_ERROR if failed else 0


# script (see yamabiko.client.script and docs/scripts.md)


def _script_args(sub: Any) -> None:
    script = sub.add_parser("script", help="run a scripted session (docs/scripts.md)")
    script.add_argument("file", nargs="?", help="the script, JSON Lines")
    script.add_argument("--record", metavar="FILE", help="record a session to FILE instead")
    script.add_argument("--listen-port", type=int, help="with --record: the proxy's port")
    _connect_args(script, data_dir_help="mint a short-lived token from this dir")
    script.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole run")
    script.add_argument(
        "--no-initialize",
        dest="initialize",
        action="store_false",
        help="do not send initialize first (also skipped when the script's first step does)",
    )
    script.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print each message sent and received to stderr (secrets redacted)",
    )


def _script(args: argparse.Namespace) -> int:
    from yamabiko.client import script

    if (args.file is None) == (args.record is None):
        print("yamabiko: give a script FILE or --record FILE", file=sys.stderr)
        return EXIT_USAGE
    if args.record is not None and args.listen_port is None:
        print("yamabiko: --record needs --listen-port", file=sys.stderr)
        return EXIT_USAGE
    steps: list[Any] = []
    if args.file is not None:
        try:
            steps = script.load_script(args.file)
        except script.ScriptError as exc:
            print(f"yamabiko: {args.file}:{exc.line}: {exc.message}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:
            print(f"yamabiko: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    ttl = max(300.0, args.timeout + 60) if args.record is None else 86400.0
    token = _client_token(args, ttl_s=ttl)
    if token is None:
        return EXIT_USAGE
    url = args.url or os.environ.get("YAMABIKO_URL") or "ws://127.0.0.1:8765/ws"
    if args.record is not None:
        return _run(script.record(args.record, url, token, listen_port=args.listen_port))
    return _run(
        script.run_script(
            steps,
            url,
            token,
            initialize=args.initialize,
            timeout=args.timeout,
            verbose=sys.stderr if args.verbose else None,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
