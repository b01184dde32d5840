"""Scripted sessions: ``yamabiko script FILE.jsonl`` runs one, ``--record`` writes one.

A script is JSON Lines, one step per line (blank lines and ``#`` comments skipped)::

    {"send": {"method": "ping", "params": {}}}              # a request, auto id
    {"notify": {"method": "ghost/change", "params": {...}}}  # a notification
    {"expect": {"result": {"pong": "$any"}}, "within": 5000} # wait for a message
    {"sleep": 100}                                           # milliseconds

Theory of operation: a reader task puts every text message the server sends (batches
split, binary frames ignored) on a queue. An ``expect`` looks first through the messages
no earlier ``expect`` consumed, in arrival order, then waits up to ``within`` ms for new
ones; the first that matches is consumed and its ``$save:`` captures are kept. Messages
that do not match stay buffered for later expects, so notifications may interleave with
responses in any order. A failure (no match in time, connection closed) stops the run.

Matching is partial: every key of the expectation must be present in the message and
match, extra keys are allowed; lists match element-wise and must have the same length.
Special strings: ``"$any"`` (present, any value), ``"$regex:<pattern>"`` (a string in
which ``re.search`` finds the pattern), ``"$save:<name>"`` (present; capture it),
``"$$..."`` (the literal string with one ``$`` less). ``"${name}"`` in a later step is
replaced by the captured value: as the whole string it keeps its JSON type, inside a
longer string it is interpolated as text. ``${id}`` is the id of the last request sent.

With ``verbose`` (``yamabiko script -v``) every message sent is written as a ``>``
line naming its step, and every message received as a ``<`` line as it arrives, to
stderr: secrets are never printed (fields named like one, ``token``, ``apiKey``,
``authorization``..., and any string shaped like a JWT become ``[redacted]``; see
:func:`redact`).

The pure functions (:func:`parse_script`, :func:`substitute`, :func:`match`,
:func:`to_script`, :func:`redact`) do no I/O; :func:`run_script` and :func:`record` do
the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_MALFORMED = 2

DEFAULT_WITHIN_MS = 5000.0
INIT_ID = "script-initialize"

StepKind = Literal["send", "notify", "expect", "sleep"]
_KINDS: tuple[StepKind, ...] = ("send", "notify", "expect", "sleep")
_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
_VAR = re.compile(r"\$\{(" + _NAME + r")\}")
_SAVE = re.compile(r"\$save:(" + _NAME + r")")
BUILTIN_VARIABLES = frozenset({"id"})
REDACTED = "[redacted]"
# Compared lower-cased without "_" and "-": the names the server's logs redact too.
_SECRET_KEYS = frozenset(
    {"token", "accesstoken", "authorization", "password", "secret", "apikey", "jwt"}
)
_SECRET_SUFFIXES = ("token", "secret", "password", "apikey")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class ScriptError(Exception):
    """The script is malformed (our caller's fault): exit 2, naming the line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Step:
    kind: StepKind
    line: int
    text: str
    body: Any
    within_ms: float = DEFAULT_WITHIN_MS


# Parsing


def parse_script(text: str) -> list[Step]:
    """The steps of a script; :class:`ScriptError` on the first bad line, including a
    ``${name}`` used before any earlier step saves ``name``."""
    steps: list[Step] = []
    saved: set[str] = set(BUILTIN_VARIABLES)
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        step = _parse_line(number, stripped)
        for name in _uses(step.body):
            if name not in saved:
                raise ScriptError(number, f"${{{name}}} is used before a step saves it")
        if step.kind == "expect":
            saved.update(_saves(step.body))
        steps.append(step)
    return steps


def _parse_line(number: int, text: str) -> Step:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScriptError(number, f"not JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(value, dict):
        raise ScriptError(number, "a step is a JSON object")
    kinds = [k for k in _KINDS if k in value]
    if len(kinds) != 1:
        raise ScriptError(number, "a step has exactly one of send, notify, expect, sleep")
    kind = kinds[0]
    extra = set(value) - {kind} - ({"within"} if kind == "expect" else set())
    if extra:
        raise ScriptError(number, f"unknown key(s) in a {kind} step: {', '.join(sorted(extra))}")
    body = value[kind]
    within = DEFAULT_WITHIN_MS
    if kind == "sleep":
        if not _is_number(body) or body < 0:
            raise ScriptError(number, "sleep takes milliseconds (a number >= 0)")
    elif not isinstance(body, dict):
        raise ScriptError(number, f"{kind} takes a JSON object")
    elif kind == "send":
        if "method" in body:
            if not isinstance(body["method"], str):
                raise ScriptError(number, "method must be a string")
        elif "id" not in body or ("result" in body) == ("error" in body):
            raise ScriptError(
                number, "send takes a request (method) or a response (id and result or error)"
            )
    elif kind == "notify":
        if not isinstance(body.get("method"), str):
            raise ScriptError(number, "notify needs a method")
        if "id" in body:
            raise ScriptError(number, "a notification has no id (use send for a request)")
    else:
        if "within" in value:
            within = value["within"]
            if not _is_number(within) or within <= 0:
                raise ScriptError(number, "within takes milliseconds (a number > 0)")
    return Step(kind, number, text, body, float(within))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _uses(value: Any) -> set[str]:
    return {m.group(1) for s in _strings(value) for m in _VAR.finditer(s)}


def _saves(value: Any) -> set[str]:
    return {m.group(1) for s in _strings(value) if (m := _SAVE.fullmatch(s))}


# Variables


class UnknownVariable(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"${{{name}}} has no value")
        self.name = name


def substitute(value: Any, variables: dict[str, Any]) -> Any:
    """``value`` with each ``${name}`` replaced: a whole string keeps the variable's
    JSON type, a part of a longer string becomes its text (strings as they are, other
    values as compact JSON). :class:`UnknownVariable` for a name with no value."""
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _VAR.fullmatch(value)
    if whole:
        return _lookup(whole.group(1), variables)

    def text(m: re.Match[str]) -> str:
        found = _lookup(m.group(1), variables)
        return found if isinstance(found, str) else _compact(found)

    return _VAR.sub(text, value)


def _lookup(name: str, variables: dict[str, Any]) -> Any:
    if name not in variables:
        raise UnknownVariable(name)
    return variables[name]


# Redaction


def redact(value: Any) -> Any:
    """``value`` with what may be a secret replaced by ``[redacted]``: every field
    named like one (``token``, ``refreshToken``, ``api_key``, ``authorization``...),
    at any depth, and a JWT wherever it appears in a string."""
    if isinstance(value, dict):
        return {k: REDACTED if _secret_name(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str) and "eyJ" in value:
        return _JWT.sub(REDACTED, value)
    return value


def _secret_name(key: str) -> bool:
    name = key.lower().replace("_", "").replace("-", "")
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


class Trace:
    """``yamabiko script -v``: each message sent and received, one redacted line each."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def sent(self, message: Any, step: Step | None, index: int) -> None:
        where = f"step {index} (line {step.line})" if step is not None else "initialize"
        self._line(f"> {where} {_compact(redact(message))}")

    def received(self, message: Any) -> None:
        self._line(f"< {_compact(redact(message))}")

    def note(self, text: str) -> None:
        self._line(f"# {text}")

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)


# Matching


@dataclass
class Match:
    """What :func:`match` found: the paths that differ (empty: a match) and the values
    the expectation's ``$save:`` strings captured."""

    diffs: list[str] = field(default_factory=list)
    captures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.diffs


def match(expected: Any, actual: Any) -> Match:
    """Match ``actual`` against the (already substituted) partial ``expected``."""
    result = Match()
    _match(expected, actual, "$", result)
    return result


def _match(expected: Any, actual: Any, path: str, out: Match) -> None:
    if isinstance(expected, str) and expected.startswith("$"):
        if expected == "$any":
            return
        if expected.startswith("$regex:"):
            pattern = expected[len("$regex:") :]
            if not isinstance(actual, str):
                out.diffs.append(
                    f"{path}: expected a string matching /{pattern}/, got {_show(actual)}"
                )
            elif not re.search(pattern, actual):
                out.diffs.append(f"{path}: expected /{pattern}/, got {_show(actual)}")
            return
        saved = _SAVE.fullmatch(expected)
        if saved:
            out.captures[saved.group(1)] = actual
            return
        if expected.startswith("$$"):
            expected = expected[1:]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            out.diffs.append(f"{path}: expected an object, got {_show(actual)}")
            return
        for key, value in expected.items():
            sub = _child(path, key)
            if key not in actual:
                out.diffs.append(f"{sub}: missing (expected {_show(value)})")
            else:
                _match(value, actual[key], sub, out)
        return
    if isinstance(expected, list):
        if not isinstance(actual, list):
            out.diffs.append(f"{path}: expected a list, got {_show(actual)}")
            return
        if len(expected) != len(actual):
            out.diffs.append(f"{path}: expected {len(expected)} items, got {len(actual)}")
        for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
            _match(want, got, f"{path}[{index}]", out)
        return
    if not _equal(expected, actual):
        out.diffs.append(f"{path}: expected {_show(expected)}, got {_show(actual)}")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _child(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _show(value: Any, limit: int = 200) -> str:
    text = _compact(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def closest(expected: Any, candidates: list[Any]) -> tuple[Any, Match] | None:
    """The candidate nearest to ``expected``: same ``method`` and ``id`` first, then
    the fewest differing paths, the latest on a tie."""
    best: tuple[tuple[int, int], Any, Match] | None = None
    for candidate in candidates:
        found = match(expected, candidate)
        keyed = sum(
            1
            for key in ("method", "id")
            if isinstance(expected, dict)
            and key in expected
            and any(d.startswith(f"$.{key}:") for d in found.diffs)
        )
        score = (keyed, len(found.diffs))
        if best is None or score <= best[0]:
            best = (score, candidate, found)
    return None if best is None else (best[1], best[2])


# Running


class StepFailed(Exception):
    def __init__(self, step: Step, index: int, reason: str, details: list[str]) -> None:
        super().__init__(reason)
        self.step = step
        self.index = index
        self.reason = reason
        self.details = details

    def report(self) -> str:
        lines = [f"step {self.index} (line {self.step.line}) failed: {self.reason}"]
        lines.append(f"  step:     {self.step.text}")
        lines.extend(f"  {line}" for line in self.details)
        return "\n".join(lines)


_CLOSED = object()


class Session:
    """The received side of one scripted connection (see the module docstring)."""

    def __init__(self, trace: Trace | None = None) -> None:
        self.trace = trace
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.pending: list[Any] = []
        self.received = 0
        self.last: Any = None
        self.closed: str | None = None

    def feed(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            return  # binary frames (audio) are not scripted
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = {"$unparsable": raw}
        for item in value if isinstance(value, list) else [value]:
            if self.trace is not None:
                self.trace.received(item)
            self.queue.put_nowait(item)

    def close(self, reason: str) -> None:
        self.queue.put_nowait(_CLOSED)
        self.closed = self.closed or reason

    async def take(self, expected: Any, within_s: float) -> tuple[Any, Match] | None:
        """Consume the first message matching ``expected`` (pending ones first)."""
        for index, message in enumerate(self.pending):
            found = match(expected, message)
            if found.ok:
                del self.pending[index]
                return message, found
        deadline = time.monotonic() + within_s
        while self.closed is None or not self.queue.empty():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    message = await self.queue.get()
            except TimeoutError:
                return None
            if message is _CLOSED:
                continue
            self.received += 1
            self.last = message
            found = match(expected, message)
            if found.ok:
                return message, found
            self.pending.append(message)
        return None


async def run_script(
    steps: list[Step],
    url: str,
    token: str | None,
    *,
    initialize: bool = True,
    timeout: float = 60.0,
    out: IO[str] | None = None,
    verbose: IO[str] | None = None,
) -> int:
    """Run ``steps`` against the server at ``url``: 0 when every step passed (one line
    on ``out``), 1 on the first failure (the report on stderr). ``verbose``: where to
    trace every message sent and received (redacted)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    out = out or sys.stdout
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        ws = await connect(
            url,
            additional_headers=headers,
            subprotocols=["yamabiko.v1"],  # type: ignore[list-item]
            compression=None,
            max_size=16 << 20,
            open_timeout=min(timeout, 10.0),
        )
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
        print(f"yamabiko: refused: HTTP {exc.response.status_code} {body}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, TimeoutError) as exc:
        print(f"yamabiko: cannot connect to {url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    trace = Trace(verbose) if verbose is not None else None
    if trace is not None:
        trace.note(f"connected to {_JWT.sub(REDACTED, url)} ({len(steps)} steps)")
    session = Session(trace)

    async def read() -> None:
        try:
            async for raw in ws:
                session.feed(raw)
        except ConnectionClosed:
            pass
        finally:
            code = ws.close_code  # 1006 (never sent on the wire): no close frame came
            session.close(
                f"the connection closed (code {code})"
                if code not in (None, 1006)
                else "the connection closed"
            )

    reader = asyncio.get_running_loop().create_task(read())
    current = [0]
    try:
        async with asyncio.timeout(timeout):
            if initialize and not _starts_with_initialize(steps):
                failure = await _initialize(ws, session, timeout, trace)
                if failure:
                    print(f"yamabiko: initialize failed: {failure}", file=sys.stderr)
                    return EXIT_FAILED
            await _steps(ws, session, steps, current, trace)
    except StepFailed as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_FAILED
    except TimeoutError:
        where = f"during step {current[0]}" if current[0] else "before the first step"
        print(f"yamabiko: the script ran past --timeout {timeout} s {where}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    print(f"{len(steps)} steps passed", file=out)
    return EXIT_OK


def _starts_with_initialize(steps: list[Step]) -> bool:
    first = next((s for s in steps if s.kind in ("send", "notify")), None)
    return first is not None and first.body.get("method") == "initialize"


async def _initialize(
    ws: Any, session: Session, timeout: float, trace: Trace | None = None
) -> str | None:
    request = {
        "jsonrpc": "2.0",
        "id": INIT_ID,
        "method": "initialize",
        "params": {
            "protocolVersion": "yamabiko/1",
            "clientInfo": {"name": "yamabiko-script", "version": "0.1.0"},
            "capabilities": {},
        },
    }
    if trace is not None:
        trace.sent(request, None, 0)
    await ws.send(_compact(request))
    found = await session.take({"id": INIT_ID}, timeout)
    if found is None:
        return session.closed or "no answer"
    response = found[0]
    if isinstance(response, dict) and "error" in response:
        return _show(response["error"])
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    if trace is not None:
        trace.sent(initialized, None, 0)
    await ws.send(_compact(initialized))
    return None


async def _steps(
    ws: Any, session: Session, steps: list[Step], current: list[int], trace: Trace | None = None
) -> None:
    from websockets.exceptions import ConnectionClosed

    variables: dict[str, Any] = {}
    next_id = 1
    for index, step in enumerate(steps, start=1):
        current[0] = index
        if step.kind == "sleep":
            await asyncio.sleep(step.body / 1000)
            continue
        try:
            body = substitute(step.body, variables)
        except UnknownVariable as exc:
            raise StepFailed(step, index, str(exc), []) from None
        if step.kind == "expect":
            found = await session.take(body, step.within_ms / 1000)
            if found is None:
                raise _no_match(step, index, body, session)
            variables.update(found[1].captures)
            if trace is not None:
                trace.note(f"step {index} (line {step.line}) expect matched")
            continue
        message = {"jsonrpc": "2.0", **body}
        if step.kind == "send" and "method" in body:
            if "id" not in body:
                message["id"] = next_id
                next_id += 1
            variables["id"] = message["id"]
        if trace is not None:
            trace.sent(message, step, index)
        try:
            await ws.send(_compact(message))
        except ConnectionClosed:
            raise StepFailed(step, index, session.closed or "the connection closed", []) from None


def _no_match(step: Step, index: int, expected: Any, session: Session) -> StepFailed:
    if session.closed and session.queue.empty():
        reason = f"{session.closed} before a matching message"
    else:
        reason = f"no matching message within {step.within_ms:g} ms"
    details = [f"expected: {_show(expected, 1000)}"]
    near = closest(expected, session.pending)
    if near is None:
        if session.last is None:
            details.append("received: nothing")
        else:
            details.append("received: nothing unmatched; the last message was")
            details.append(f"          {_show(session.last, 1000)}")
    else:
        message, found = near
        details.append(f"closest:  {_show(message, 1000)}")
        details.extend(found.diffs)
    details.append(f"({session.received} messages received, {len(session.pending)} unmatched)")
    return StepFailed(step, index, reason, details)


def load_script(path: str) -> list[Step]:
    """Read and parse ``path`` (:class:`ScriptError` or :class:`OSError`)."""
    return parse_script(Path(path).read_text(encoding="utf-8"))


# Recording

TIME_KEYS = frozenset({"timestamp", "time", "ts", "elapsedMs", "latencyMs", "durationMs"})
TEXT_KEYS = frozenset({"text", "content"})
COUNT_KEYS = frozenset({"seq", "usage", "inputTokens", "outputTokens", "costUsd", "score"})
SKIPPED_NOTIFICATIONS = frozenset({"stream/delta"})
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def to_script(messages: list[tuple[Literal["client", "server"], Any]]) -> list[dict[str, Any]]:
    """The steps replaying a recorded session: client messages become ``send`` /
    ``notify`` steps, server messages ``expect`` steps, in the order they passed.

    Volatile fields of server messages are replaced: a string under ``sessionId``, a
    key ending in ``Id`` or a nested ``id`` that the client did not send itself becomes
    ``"$save:<key>"`` the first time (``<key>2``... for another value under the same
    key) and ``"${<key>}"`` wherever the value appears later, in either direction;
    timestamps (keys ending in ``At``, :data:`TIME_KEYS`, ISO-8601 strings), generated
    text (``text``/``content`` strings the client did not send) and the counts that
    follow from it (:data:`COUNT_KEYS`) become ``"$any"``. ``stream/delta``
    notifications are left out (the ``stream/end`` is kept), and so is ``items`` of
    ``ghost/suggestions`` (made ``"$any"``): both depend on the engine's wording.
    """
    names: dict[str, str] = {}  # a saved value -> its variable
    sent: set[str] = set()
    steps: list[dict[str, Any]] = []
    for side, message in messages:
        if not isinstance(message, dict):
            continue
        body = {k: v for k, v in message.items() if k != "jsonrpc"}
        if side == "client":
            sent.update(_strings(body))
            body = _replace_known(body, names)
            kind = "notify" if "method" in body and "id" not in body else "send"
            steps.append({kind: body})
        elif body.get("method") not in SKIPPED_NOTIFICATIONS:
            expected = _volatile(body, names, sent, set(), top=True)
            if expected.get("method") == "ghost/suggestions" and "params" in expected:
                expected["params"]["items"] = "$any"
            steps.append({"expect": expected})
    return steps


def _replace_known(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _replace_known(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_known(v, names) for v in value]
    if isinstance(value, str) and value in names:
        return "${" + names[value] + "}"
    return value


def _volatile(
    value: Any, names: dict[str, str], sent: set[str], fresh: set[str], *, top: bool = False
) -> Any:
    """``value`` with its volatile fields replaced; ``fresh`` holds the values saved
    in this message so far: a capture is only usable from the next step on, so a value
    met twice in one message (a reply's ``messageId`` and ``streamId``) is saved twice."""
    if isinstance(value, list):
        return [_volatile(v, names, sent, fresh) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if top and key == "id":
            out[key] = item  # our own request's id, or the server's request's
        elif isinstance(item, str) and item in names and item not in fresh:
            out[key] = "${" + names[item] + "}"
        elif (
            key.endswith("At")
            or key in TIME_KEYS
            or key in COUNT_KEYS
            or (isinstance(item, str) and _ISO_TIME.match(item))
            or (key in TEXT_KEYS and isinstance(item, str) and item not in sent)
        ):
            out[key] = "$any"
        elif (
            isinstance(item, str)
            and (key.endswith("Id") or key == "id")
            and item not in sent
            and re.fullmatch(_NAME, key)
        ):
            name = key
            taken = set(names.values()) | BUILTIN_VARIABLES
            suffix = 2
            while name in taken:
                name = f"{key}{suffix}"
                suffix += 1
            names[item] = name
            fresh.add(item)
            out[key] = f"$save:{name}"
        else:
            out[key] = _volatile(item, names, sent, fresh)
    return out


async def record(
    path: str,
    url: str,
    token: str | None,
    *,
    listen_port: int,
    host: str = "127.0.0.1",
    out: IO[str] | None = None,
) -> int:
    """Relay one WebSocket client on ``host:listen_port`` to ``url`` and, when it
    leaves (or on SIGINT/SIGTERM), write what passed as a script to ``path``."""
    import signal

    from websockets.asyncio.client import connect
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    out = out or sys.stdout
    log: list[tuple[Literal["client", "server"], Any]] = []
    done = asyncio.Event()
    failure: list[str] = []
    taken = False

    async def pump(src: Any, dst: Any, side: Literal["client", "server"]) -> None:
        try:
            async for raw in src:
                if isinstance(raw, str):
                    with contextlib.suppress(json.JSONDecodeError):
                        value = json.loads(raw)
                        for item in value if isinstance(value, list) else [value]:
                            log.append((side, item))
                await dst.send(raw)
        except ConnectionClosed:
            pass
        finally:
            await dst.close()

    async def handler(client: ServerConnection) -> None:
        nonlocal taken
        if taken:
            await client.close(1013, "the recorder takes one client")
            return
        taken = True
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            upstream = await connect(
                url,
                additional_headers=headers,
                subprotocols=[client.subprotocol] if client.subprotocol else None,
                compression=None,
                max_size=16 << 20,
            )
        except (InvalidStatus, OSError, TimeoutError) as exc:
            failure.append(f"cannot connect to {url}: {exc}")
            await client.close(1011, "upstream refused")
            done.set()
            return
        try:
            await asyncio.gather(pump(client, upstream, "client"), pump(upstream, client, "server"))
        finally:
            done.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    async with serve(
        handler,
        host,
        listen_port,
        select_subprotocol=lambda _conn, offered: offered[0] if offered else None,
        compression=None,
        max_size=16 << 20,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"recording on ws://{host}:{port}/ws", file=out, flush=True)
        await done.wait()
    if failure:
        print(f"yamabiko: {failure[0]}", file=sys.stderr)
        return EXIT_FAILED
    steps = to_script(log)
    lines = [f"# recorded by yamabiko script --record from {url}"]
    lines.extend(_compact(step) for step in steps)
    await asyncio.to_thread(Path(path).write_text, "\n".join(lines) + "\n", encoding="utf-8")
    print(f"recorded {len(steps)} steps to {path}", file=out, flush=True)
    return EXIT_OK
