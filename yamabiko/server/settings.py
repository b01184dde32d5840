"""Settings: one typed object, read from defaults < TOML file < ``YAMABIKO_*`` < CLI flags.

Call :func:`load_settings` once at start. It returns a fully validated :class:`Settings`
or raises :class:`SettingsError`, whose message names the setting the way the user wrote
it (``YAMABIKO_PORT``, ``port (yamabiko.toml)``, ``--port``) and never echoes a secret.
Building ``Settings(...)`` directly (tests) skips validation.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import msgspec
from cryptography.fernet import Fernet
from msgspec import Meta

ENV_PREFIX = "YAMABIKO_"
CONFIG_ENV = "YAMABIKO_CONFIG"
DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# Values of these are never echoed in error messages or the repr: URLs may hold passwords.
SECRET_FIELDS = frozenset({"jwt_secret", "encryption_keys", "database_url", "redis_url"})

Port = Annotated[int, Meta(ge=0, le=65535)]
Positive = Annotated[float, Meta(gt=0.0)]
"""(``gt=0.0``, not ``0``: typing caches equal ``Annotated`` aliases, so an int bound here
would become the bound of an equal alias in the schema when settings load first.)"""
AtLeastOne = Annotated[int, Meta(ge=1)]


class SettingsError(Exception):
    """A setting is missing, malformed or inconsistent; the message names it as written."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every server setting with its default; the descriptions feed ``settings_help``."""

    host: Annotated[str, Meta(description="Interface to listen on.")] = "127.0.0.1"
    port: Annotated[Port, Meta(description="WebSocket and HTTP port; 0 picks a free one.")] = 8765
    data_dir: Annotated[
        str, Meta(description="Directory for the dev secret, the Fernet key and SQLite.")
    ] = ".yamabiko"
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"],
        Meta(description="DEBUG, INFO, WARNING or ERROR (any case)."),
    ] = "INFO"
    jwt_secret: Annotated[
        str | None, Meta(description="HS256 secret; with no JWT setting the data dir's is used.")
    ] = None
    jwt_public_key_file: Annotated[
        str | None, Meta(description="PEM public key file for RS256/ES256/EdDSA tokens.")
    ] = None
    jwt_jwks_url: Annotated[
        str | None, Meta(description="JWKS URL for RS256/ES256/EdDSA tokens (cached).")
    ] = None
    jwt_audience: Annotated[str | None, Meta(description="Required `aud` claim, if set.")] = None
    jwt_issuer: Annotated[str | None, Meta(description="Required `iss` claim, if set.")] = None
    jwt_leeway_s: Annotated[
        float, Meta(ge=0, description="Clock skew allowed on `exp` and `nbf`, in seconds.")
    ] = 0.0
    max_message_bytes: Annotated[
        int, Meta(ge=1024, description="Largest message accepted; bigger ones close 1009.")
    ] = 1048576
    database_url: Annotated[
        str | None,
        Meta(description="sqlite:///PATH or postgresql://...; unset: SQLite in the data dir."),
    ] = None
    redis_url: Annotated[
        str | None,
        Meta(description="redis://, rediss:// or unix:// URL; unset: one node, in process."),
    ] = None
    encryption_keys: Annotated[
        tuple[str, ...],
        Meta(description="Fernet keys (comma list) for stored secrets; the first encrypts."),
    ] = ()
    mcp_port: Annotated[Port, Meta(description="Port of the MCP Streamable HTTP face.")] = 8766
    mcp_http: Annotated[
        bool,
        Meta(description="Serve the MCP HTTP face; false: the socket and the bridge only."),
    ] = True
    allowed_origins: Annotated[
        tuple[str, ...], Meta(description="Browser origins allowed (comma list); unset: any.")
    ] = ()
    ping_interval_s: Annotated[Positive, Meta(description="Seconds between pings.")] = 20.0
    ping_timeout_s: Annotated[Positive, Meta(description="Seconds to wait for a pong.")] = 20.0
    compression: Annotated[bool, Meta(description="Offer permessage-deflate.")] = False
    max_running_requests: Annotated[
        AtLeastOne, Meta(description="Requests running at once per session.")
    ] = 8
    max_subscriptions: Annotated[AtLeastOne, Meta(description="Subscriptions per session.")] = 32
    max_audio_streams: Annotated[AtLeastOne, Meta(description="Audio streams per session.")] = 4
    max_documents: Annotated[AtLeastOne, Meta(description="Ghost documents per session.")] = 16
    max_batch: Annotated[AtLeastOne, Meta(description="Messages in one JSON-RPC batch.")] = 100
    outbound_queue_bytes: Annotated[
        int, Meta(ge=65536, description="Bytes queued for a slow client before shedding.")
    ] = 4194304
    slow_consumer_timeout_s: Annotated[
        Positive, Meta(description="A client reading nothing this long is closed (4008).")
    ] = 30.0
    max_connections_per_user: Annotated[
        AtLeastOne, Meta(description="Open sockets per user; more are refused with 429.")
    ] = 16
    requests_per_second: Annotated[Positive, Meta(description="Per-user request rate.")] = 100.0
    request_burst: Annotated[AtLeastOne, Meta(description="Per-user burst above the rate.")] = 200
    tenant_requests_per_second: Annotated[
        Positive, Meta(description="Per-tenant request rate.")
    ] = 1000.0
    tenant_request_burst: Annotated[
        AtLeastOne, Meta(description="Per-tenant burst above the rate.")
    ] = 2000
    scripts_dir: Annotated[
        str | None,
        Meta(description="Directory `scripted/<file>` models read from; unset: none exist."),
    ] = None
    ghost_onnx_model_dir: Annotated[
        str | None,
        Meta(description="Directory with model.onnx and tokenizer.json for ghost engine onnx."),
    ] = None
    ghost_llm_model: Annotated[
        str | None,
        Meta(description="Model of ghost engine llm (engine/providerModel); unset: default."),
    ] = None
    max_audio_seconds: Annotated[
        Positive, Meta(description="The longest audio one audio/synthesize may make.")
    ] = 300.0
    audio_onnx_model_dir: Annotated[
        str | None,
        Meta(description="Directory with manifest.json and models for audio engine onnx."),
    ] = None
    audio_tts_model: Annotated[
        str, Meta(description="OpenAI speech model of audio engine tts.")
    ] = "gpt-4o-mini-tts"
    mcp_stdio_allowlist: Annotated[
        tuple[str, ...],
        Meta(description="Commands (names or absolute paths) stdio MCP servers may run."),
    ] = ()
    stream_retention_s: Annotated[
        Positive, Meta(description="Seconds a stream's history is kept after it ends.")
    ] = 600.0
    stream_max_items: Annotated[
        AtLeastOne, Meta(description="Items of history kept per stream (the newest).")
    ] = 10000
    shutdown_timeout_s: Annotated[
        float, Meta(ge=0, description="Seconds given to running work on shutdown.")
    ] = 10.0
    dev: Annotated[
        bool | None, Meta(description="Dev conveniences; unset: on when no JWT key is configured.")
    ] = None
    max_mcp_sessions_per_user: Annotated[
        AtLeastOne, Meta(description="Open MCP HTTP sessions per user; more are refused with 429.")
    ] = 8
    mcp_session_idle_s: Annotated[
        Positive, Meta(description="An MCP HTTP session with no request this long is closed.")
    ] = 300.0
    handshakes_per_second: Annotated[
        float,
        Meta(
            ge=0,
            description="Handshakes per second per client address (IPv6: per /64); 0: no limit.",
        ),
    ] = 100.0
    handshake_burst: Annotated[
        AtLeastOne, Meta(description="Handshakes per client address in a burst above the rate.")
    ] = 2000
    audit_retention_days: Annotated[
        float, Meta(ge=0, description="Days audit events are kept; 0: forever.")
    ] = 90.0
    redis_max_connections: Annotated[
        AtLeastOne, Meta(description="Connections per Redis pool; more callers wait for one.")
    ] = 64
    redis_pool_timeout_s: Annotated[
        Positive, Meta(description="Seconds a caller waits for a Redis connection, then fails.")
    ] = 5.0
    stream_lease_s: Annotated[
        float,
        Meta(ge=0.5, le=60, description="A producing node's lease on its live streams."),
    ] = 5.0
    mcp_egress_allow: Annotated[
        tuple[str, ...],
        Meta(description="Private hosts/networks[:port] HTTP MCP servers may be at (comma list)."),
    ] = ()
    speech_engine: Annotated[
        str,
        Meta(
            pattern="^[a-z][a-z0-9_-]{0,31}$",
            description="Audio engine for text when audio/synthesize names none (e.g. piper).",
        ),
    ] = "singer"
    audio_piper_model: Annotated[
        str | None,
        Meta(description="Piper voice (.onnx, .onnx.json beside it) for engine piper; else joe."),
    ] = None
    workers: Annotated[
        int,
        Meta(ge=0, le=1024, description="Worker processes on one port; 0 or auto: one per CPU."),
    ] = 1
    stream_history_bytes: Annotated[
        int,
        Meta(
            ge=1 << 16,
            description="Bytes of stream history one node keeps in memory; the first ended "
            "streams are evicted first.",
        ),
    ] = 32 << 20
    stream_audio_retention_s: Annotated[
        Positive, Meta(description="Seconds an audio stream's frames are kept after it ends.")
    ] = 120.0

    @property
    def data_path(self) -> Path:
        """The data dir as an absolute path (``~`` expanded, relative to the cwd now)."""
        return Path(self.data_dir).expanduser().absolute()

    @property
    def scripts_path(self) -> Path | None:
        """The scripts dir (``~`` expanded), or None: scripted models are off."""
        return Path(self.scripts_dir).expanduser() if self.scripts_dir else None

    @property
    def effective_database_url(self) -> str:
        """``database_url``, else ``sqlite:///`` + the absolute path of ``yamabiko.db``."""
        return self.database_url or f"sqlite:///{self.data_path / 'yamabiko.db'}"

    @property
    def uses_data_dir_secret(self) -> bool:
        """True when no JWT key is configured, so tokens are checked with the data dir's."""
        return not (self.jwt_secret or self.jwt_public_key_file or self.jwt_jwks_url)

    @property
    def needs_data_dir(self) -> bool:
        """True when something comes from the data dir: the JWT secret (no JWT key
        configured), the Fernet key (no ``encryption_keys``) or SQLite (no
        ``database_url``). A server configured with all three creates no data dir."""
        return self.uses_data_dir_secret or not self.encryption_keys or not self.database_url

    @property
    def worker_count(self) -> int:
        """``workers``, with 0 (``auto``) resolved to the CPUs this process may use."""
        if self.workers:
            return self.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # no sched_getaffinity (macOS, Windows)
            return max(1, os.cpu_count() or 1)

    @property
    def dev_mode(self) -> bool:
        """``dev`` if given, else :attr:`uses_data_dir_secret`."""
        return self.uses_data_dir_secret if self.dev is None else self.dev

    def __repr__(self) -> str:
        # Settings end up in tracebacks and debug logs: keep secrets out of them.
        parts = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in SECRET_FIELDS and value:
                value = _mask_url(value) if name.endswith("_url") else "[redacted]"
            parts.append(f"{name}={value!r}")
        return f"Settings({', '.join(parts)})"


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///PATH`` URL (``sqlite:////abs`` is absolute)."""
    if not url.startswith("sqlite:///"):
        raise ValueError("not a sqlite:/// URL")
    return url.removeprefix("sqlite:///")


_HINTS = get_type_hints(Settings, include_extras=True)
_FIELDS: tuple[str, ...] = Settings.__struct_fields__


def _base_type(name: str) -> Any:
    hint = _HINTS[name]
    while get_origin(hint) is Annotated:
        hint = get_args(hint)[0]
    return hint


def _description(name: str) -> str:
    hint = _HINTS[name]
    while get_origin(hint) is Annotated:
        for meta in get_args(hint)[1:]:
            if isinstance(meta, Meta) and meta.description:
                return meta.description
        hint = get_args(hint)[0]
    return ""


def _mask_url(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


def env_name(name: str) -> str:
    """The environment variable for field ``name``: ``YAMABIKO_`` + upper case."""
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    """The CLI flag for field ``name``: ``--`` + dashes."""
    return "--" + name.replace("_", "-")


def _format_default(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def settings_help() -> list[tuple[str, str, str]]:
    """(env name, default, description) for every setting, in declaration order."""
    defaults = Settings()
    return [
        (env_name(name), _format_default(getattr(defaults, name)), _description(name))
        for name in _FIELDS
    ]


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _from_text(name: str, text: str, label: str) -> Any:
    """Turn the text form (env, CLI) of a tuple, bool or level into its value."""
    kind = _base_type(name)
    if get_origin(kind) is tuple:
        return tuple(item.strip() for item in text.split(",") if item.strip())
    if bool in {kind, *get_args(kind)}:
        word = text.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise SettingsError(f"{label}: expected one of 1/0/true/false/yes/no/on/off, got {text!r}")
    if name == "log_level":
        return text.strip().upper()
    if name == "workers" and text.strip().lower() == "auto":
        return 0
    return text


def _read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise SettingsError(f"config file {os.fspath(path)}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {os.fspath(path)}: invalid TOML: {exc}") from None
    # A [yamabiko] table lets the settings share a file with other tools' tables.
    table = document.get("yamabiko")
    return table if isinstance(table, dict) else document


def load_settings(
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the sources, validate everything, and return the settings or raise.

    ``env`` defaults to ``os.environ``; empty values count as unset. The config file is
    ``config_file``, else ``$YAMABIKO_CONFIG``, else none. ``overrides`` are CLI flags by
    field name; ``None`` means not given.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    labels: dict[str, str] = {}

    config_file = config_file or env.get(CONFIG_ENV) or None
    if config_file is not None:
        where = os.fspath(config_file)
        for key, value in _read_file(config_file).items():
            if key not in _FIELDS:
                close = difflib.get_close_matches(key, _FIELDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SettingsError(f"{key} ({where}): unknown setting{hint}")
            labels[key] = f"{key} ({where})"
            raw[key] = _from_text(key, value, labels[key]) if isinstance(value, str) else value

    for name in _FIELDS:
        text = env.get(env_name(name))
        if text:
            labels[name] = env_name(name)
            raw[name] = _from_text(name, text, labels[name])

    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in _FIELDS:
            raise SettingsError(f"{flag_name(name)}: unknown setting")
        labels[name] = flag_name(name)
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        raw[name] = _from_text(name, value, labels[name]) if isinstance(value, str) else value

    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(str(exc), raw, labels)) from None
    _check(settings, labels)
    return settings


def _explain(message: str, raw: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """Rewrite msgspec's ``... - at `$.field[i]``` as ``LABEL: ..., got VALUE``."""
    found = re.search(r" - at `\$\.(\w+)(.*)`$", message)
    if found is None:
        return message
    name, rest = found.group(1), found.group(2)
    detail = re.sub(r", got `[^`]*`", "", message[: found.start()]).replace("`", "")
    if detail.startswith("Invalid enum value"):
        detail = "expected one of " + ", ".join(get_args(_base_type(name)))
    label = labels.get(name, name) + (f" item {rest}" if rest else "")
    if name in SECRET_FIELDS:
        return f"{label}: {detail}"
    return f"{label}: {detail}, got {raw.get(name)!r}"


def _check(settings: Settings, labels: Mapping[str, str]) -> None:
    """Checks msgspec cannot express: URL schemes, Fernet keys, files, exclusions."""

    def label(name: str) -> str:
        return labels.get(name, name)

    url = settings.database_url
    if url is not None and (not url.startswith(DATABASE_SCHEMES) or url == "sqlite:///"):
        raise SettingsError(
            f"{label('database_url')}: expected sqlite:///PATH, postgresql://... or "
            f"postgres://..., got a {url.split(':', 1)[0]!r} URL"
        )
    url = settings.redis_url
    if url is not None and not url.startswith(REDIS_SCHEMES):
        raise SettingsError(
            f"{label('redis_url')}: expected redis://, rediss:// or unix://, "
            f"got a {url.split(':', 1)[0]!r} URL"
        )
    count = len(settings.encryption_keys)
    for position, key in enumerate(settings.encryption_keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            # Never echo the key: a near-miss is still most of a secret.
            raise SettingsError(
                f"{label('encryption_keys')}: key {position} of {count} is not a valid Fernet "
                "key (32 url-safe base64-encoded bytes; make one with "
                "`python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)"
            ) from None
    if settings.jwt_public_key_file is not None and settings.jwt_jwks_url is not None:
        raise SettingsError(
            f"{label('jwt_public_key_file')} and {label('jwt_jwks_url')} are mutually "
            "exclusive: give one"
        )
    path = settings.jwt_public_key_file
    if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise SettingsError(f"{label('jwt_public_key_file')}: {path!r} is not a readable file")
