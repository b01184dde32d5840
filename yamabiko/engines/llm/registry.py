"""From a model name to an engine: ``engine/providerModel``.

The rules are in docs/streams.md, Which model, which key.

``openai/gpt-4.1-mini``, ``anthropic/claude-sonnet-4-5``, ``gemini/gemini-2.5-flash``,
``local/default``, ``scripted/path/to/file.jsonl``: the part before the first ``/`` names
the engine, the rest is the provider's model id. (The catalogue in the store adds
aliases and prices; it hands this module the canonical name.)

Keys: a request's ``api_key`` (the agent's secret) comes first, then the server's
environment: ``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``, ``GEMINI_API_KEY``, with
``ANTHROPIC_BASE_URL``, ``OPENAI_BASE_URL`` and ``GEMINI_BASE_URL`` for the endpoints. An
OpenAI ``base_url`` other than OpenAI's own needs no key (Ollama, vLLM, llama.cpp).

The environment is passed in (a mapping), never read from ``os.environ`` here, so that
the server decides what the engines see and tests are hermetic.

:func:`default_model`: the first engine with a key, in the order anthropic, openai,
gemini (the order of :data:`KEY_VARIABLES`), as its :data:`DEFAULT_PROVIDER_MODELS`
model; with no key, ``local/default``. (A tenant's default model, when set, comes
before this; that is the caller's rule.)
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple, Self

from yamabiko.engines.llm.base import ChatMessage, LLMEngine, LLMEvent, LLMRequest
from yamabiko.engines.llm.errors import MissingApiKey, UnknownModel
from yamabiko.engines.llm.local import MODELS as LOCAL_MODELS
from yamabiko.engines.llm.local import LocalEngine
from yamabiko.engines.llm.providers import PROVIDERS, is_custom_openai_url
from yamabiko.engines.llm.retry import FallbackStream, RetryPolicy, with_retries
from yamabiko.engines.llm.scripted import ScriptedEngine

ENGINES: Final = ("anthropic", "openai", "gemini", "local", "scripted")
KEY_VARIABLES: Final = {name: p.key_variable for name, p in PROVIDERS.items()}
"""The engines that take a key, in :func:`default_model`'s order, and the variable that
holds the server's key. An agent's secret of the same name overrides it."""
BASE_URL_VARIABLES: Final = {name: p.base_url_variable for name, p in PROVIDERS.items()}
DEFAULT_PROVIDER_MODELS: Final = {
    **{name: p.default_model for name, p in PROVIDERS.items()},
    "local": "default",
}
LOCAL_DEFAULT: Final = "local/default"


class ModelName(NamedTuple):
    engine: str
    provider_model: str

    def __str__(self) -> str:
        return f"{self.engine}/{self.provider_model}"


def parse_model(name: str) -> ModelName:
    """Split ``engine/providerModel``; :class:`UnknownModel` if it is not one."""
    engine, slash, provider_model = name.partition("/")
    if not slash or not engine or not provider_model:
        raise UnknownModel(f"model {name!r} is not engine/providerModel (e.g. openai/gpt-4.1-mini)")
    if engine not in ENGINES:
        raise UnknownModel(
            f"unknown engine {engine!r} in model {name!r}: expected one of {', '.join(ENGINES)}"
        )
    return ModelName(engine, provider_model)


def env_value(env: Mapping[str, str], variable: str) -> str | None:
    """A variable's value; empty counts as unset."""
    value = env.get(variable, "").strip()
    return value or None


def default_model(env: Mapping[str, str]) -> str:
    """The first engine with a key in ``env`` (anthropic, openai, gemini), else the
    local engine. See the module docstring."""
    for engine, variable in KEY_VARIABLES.items():
        if env_value(env, variable):
            return f"{engine}/{DEFAULT_PROVIDER_MODELS[engine]}"
    return LOCAL_DEFAULT


@dataclass(frozen=True)
class ResolvedModel:
    """A model name resolved: the engine (with retries) and the provider's model id."""

    name: str
    engine_name: str
    provider_model: str
    engine: LLMEngine
    api_key: str | None
    """The key given to :meth:`EngineRegistry.resolve` (None: the environment's)."""

    def request(
        self,
        messages: Sequence[ChatMessage],
        *,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int = 1024,
        seed: int | None = None,
        traceparent: str | None = None,
    ) -> LLMRequest:
        """A request for this model, carrying its key."""
        return LLMRequest(
            model=self.provider_model,
            messages=messages,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
            api_key=self.api_key,
            seed=seed,
            traceparent=traceparent,
        )

    def __repr__(self) -> str:
        return f"ResolvedModel({self.name!r})"


class EngineRegistry:
    """The engines of one server, built from ``env``, each wrapped with the retry
    ``policy``; their HTTP clients are shared by every stream until :meth:`aclose` (or
    the end of ``async with``).

    A provider with a key or a base URL in ``env`` is built at once (``preload``: its
    SDK's import, about a second, happens at start-up); any other engine on first use.
    ``scripted_root``: the directory scripted models are read from, and that they cannot
    leave (None: there are no scripted models, every ``scripted/...`` name is unknown);
    ``local_token_delay``: seconds before each token of the local engine; ``timeout``:
    seconds an HTTP read may wait on a provider.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        retry: RetryPolicy | None = None,
        scripted_root: Path | None = None,
        local_token_delay: float = 0.0,
        timeout: float = 60.0,
        preload: bool = True,
    ) -> None:
        self._env = dict(env)
        self._retry = retry or RetryPolicy()
        self._scripted_root = scripted_root
        self._local_token_delay = local_token_delay
        self._timeout = timeout
        self._engines: dict[str, LLMEngine] = {}
        if preload:
            # Import the SDKs of configured providers now (about a second, blocking)
            # rather than in the middle of a first request.
            for name, provider in PROVIDERS.items():
                if env_value(self._env, provider.key_variable) or env_value(
                    self._env, provider.base_url_variable
                ):
                    self.engine(name)

    def default_model(self) -> str:
        return default_model(self._env)

    def has_key(self, engine: str, api_key: str | None = None) -> bool:
        """Whether ``engine`` can be called: it needs no key, or one is given or set."""
        variable = KEY_VARIABLES.get(engine)
        if variable is None or api_key or env_value(self._env, variable):
            return True
        return engine == "openai" and self._custom_openai_url()

    def resolve(self, name: str, *, api_key: str | None = None) -> ResolvedModel:
        """The engine and provider model for ``name``. ``api_key``: the agent's key for
        that provider, if it has one. Raises :class:`UnknownModel` for a name no engine
        serves, :class:`MissingApiKey` when no key is available."""
        engine_name, provider_model = parse_model(name)
        if engine_name == "scripted" and self._scripted_root is None:
            raise UnknownModel(
                f"unknown model {name!r}: scripted models are off on this server"
                " (YAMABIKO_SCRIPTS_DIR is not set)"
            )
        if engine_name == "local" and provider_model not in LOCAL_MODELS:
            known = ", ".join(f"local/{m}" for m in LOCAL_MODELS)
            raise UnknownModel(f"no local model {provider_model!r}: known are {known}")
        if not self.has_key(engine_name, api_key):
            variable = KEY_VARIABLES[engine_name]
            raise MissingApiKey(
                f"no key for {name}: set {variable} on the server or give the agent "
                f"a secret named {variable}"
            )
        return ResolvedModel(name, engine_name, provider_model, self.engine(engine_name), api_key)

    def engine(self, engine_name: str) -> LLMEngine:
        """The engine called ``engine_name`` (with retries), built on first use."""
        engine = self._engines.get(engine_name)
        if engine is None:
            engine = with_retries(self._build(engine_name), self._retry)
            self._engines[engine_name] = engine
        return engine

    def _build(self, engine_name: str) -> LLMEngine:
        # The provider modules are imported here, on first use: their SDKs are slow to
        # import, and a server with no key never needs them.
        if engine_name == "local":
            return LocalEngine(token_delay=self._local_token_delay)
        if engine_name == "scripted":
            if self._scripted_root is None:
                raise UnknownModel("scripted models are off (YAMABIKO_SCRIPTS_DIR is not set)")
            return ScriptedEngine(self._scripted_root)
        provider = PROVIDERS.get(engine_name)
        if provider is None:
            raise UnknownModel(f"unknown engine {engine_name!r}")
        api_key = env_value(self._env, provider.key_variable)
        base_url = env_value(self._env, provider.base_url_variable)
        if engine_name == "anthropic":
            from yamabiko.engines.llm.anthropic import AnthropicEngine

            return AnthropicEngine(api_key=api_key, base_url=base_url, timeout=self._timeout)
        if engine_name == "openai":
            from yamabiko.engines.llm.openai import OpenAIEngine

            return OpenAIEngine(api_key=api_key, base_url=base_url, timeout=self._timeout)
        from yamabiko.engines.llm.gemini import GeminiEngine

        return GeminiEngine(api_key=api_key, base_url=base_url, timeout=self._timeout)

    def _custom_openai_url(self) -> bool:
        return is_custom_openai_url(env_value(self._env, BASE_URL_VARIABLES["openai"]))

    def stream_with_fallbacks(
        self,
        models: Sequence[str],
        build: Callable[[ResolvedModel], LLMRequest],
        *,
        api_keys: Mapping[str, str] | None = None,
    ) -> FallbackStream:
        """Stream from the first of ``models`` that gets to its first event (each with
        its own retries). ``build`` makes the request for a resolved model (usually
        ``lambda m: m.request(messages, system=...)``); ``api_keys``: the agent's keys by
        engine name. The stream's ``model`` says which one answered."""
        keys = api_keys or {}

        def open(name: str) -> AsyncGenerator[LLMEvent, None]:
            resolved = self.resolve(name, api_key=keys.get(name.partition("/")[0]))
            return resolved.engine.stream(build(resolved))

        return FallbackStream(models, open)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every engine's HTTP clients (at shutdown, once no stream runs)."""
        engines = list(self._engines.values())
        self._engines.clear()
        for engine in engines:
            await engine.aclose()
