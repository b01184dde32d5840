"""Checking, decoding and applying DAW actions (docs/agent.md).

Theory of operation: an agent's model writes a list of actions as JSON, usually with
prose or a fenced block around it. :func:`decode_actions` finds the JSON and turns each
item into an :data:`~yamabiko.schema.daw.Action`, reporting every item that does not fit
the schema. :func:`validate_actions` then walks the list in order over a small model of
the project (track ids, their types and their note ids), so that an action may name a
track or note that an earlier action added, and never one that an earlier action
deleted. :func:`check_actions` does both and keeps the paths of the model's own list.
:func:`apply_actions` plays valid actions onto a context, without touching it, so that an
agent can plan the next step on what the project will be.

Every problem has a JSONPath into ``{"actions": [...]}`` (whether the model wrote that
object or a bare list) and a message meant for the model that repairs its output.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, assert_never

import msgspec

from yamabiko.schema.daw import (
    ACTION_TYPES,
    DEFAULT_VOLUME,
    EFFECTS,
    MAX_PAN,
    MAX_PITCH,
    MAX_TEMPO,
    MAX_VELOCITY,
    MAX_VOLUME,
    MIN_PAN,
    MIN_PITCH,
    MIN_TEMPO,
    MIN_VELOCITY,
    MIN_VOLUME,
    TRACK_TYPES,
    Action,
    AddEffect,
    AddNotes,
    AddTrack,
    DawContext,
    DeleteNotes,
    DeleteTrack,
    Effect,
    Note,
    Problem,
    SetKey,
    SetTempo,
    SetTrackParams,
    Track,
    UpdateNotes,
)

__all__ = [
    "InvalidActionsError",
    "Key",
    "Problem",
    "apply_actions",
    "check_actions",
    "decode_actions",
    "parse_key",
    "validate_actions",
]


class InvalidActionsError(ValueError):
    """:func:`apply_actions` was given actions that do not validate against the context."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(f"{len(self.problems)} problem(s); first: {first.path}: {first.message}")


# --- key names -----------------------------------------------------------------------

_PITCH_CLASSES: Final = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS: Final = {"": "", "#": "#", "♯": "#", "sharp": "#", "b": "b", "♭": "b", "flat": "b"}
_MODES: Final = {
    "": "major",
    "maj": "major",
    "major": "major",
    "ionian": "major",
    "m": "minor",
    "min": "minor",
    "minor": "minor",
    "aeolian": "minor",
    "natural minor": "minor",
    "harmonic minor": "harmonic minor",
    "melodic minor": "melodic minor",
    "dorian": "dorian",
    "phrygian": "phrygian",
    "lydian": "lydian",
    "mixolydian": "mixolydian",
    "locrian": "locrian",
}
_KEY: Final = re.compile(
    r"^([A-Ga-g])(?:\s*(sharp|flat)\b|([#b♯♭]))?\s*(.*)$", re.IGNORECASE | re.DOTALL
)


class Key(NamedTuple):
    """A parsed key name: ``Key("F#", "minor")``."""

    tonic: str
    """A letter with its accidental as written: ``C``, ``F#``, ``Bb``."""
    mode: str
    """``major``, ``minor``, ``harmonic minor``, ``melodic minor``, ``dorian``,
    ``phrygian``, ``lydian``, ``mixolydian`` or ``locrian``."""

    @property
    def pitch_class(self) -> int:
        """The tonic as 0-11, C being 0 (``Cb`` is 11, ``B#`` is 0)."""
        shift = {"": 0, "#": 1, "b": -1}[self.tonic[1:]]
        return (_PITCH_CLASSES[self.tonic[0]] + shift) % 12

    def __str__(self) -> str:
        return f"{self.tonic} {self.mode}"


def parse_key(name: str) -> Key | None:
    """The key ``name`` names, or None.

    Accepts a tonic (a letter, then ``#``, ``b``, ``♯``, ``♭``, ``sharp`` or ``flat``) and
    a mode (none meaning major; ``m``/``min``/``minor``, ``M``/``maj``/``major``, or a
    church mode), in any case, with or without a space: ``C``, ``Am``, ``A minor``,
    ``F# major``, ``Bb dorian``, ``e flat major``, ``c#m``.
    """
    match = _KEY.match(name.strip())
    if match is None:
        return None
    letter, word, sign, rest = match.groups()
    accidental = _ACCIDENTALS[(word or sign or "").lower()]
    rest = " ".join(rest.replace("-", " ").replace("_", " ").split())
    if rest == "M":
        mode: str | None = "major"  # "CM"; "Cm" is minor, hence before lowercasing
    else:
        mode = _MODES.get(rest.lower())
    if mode is None:
        return None
    return Key(letter.upper() + accidental, mode)


# --- validation ----------------------------------------------------------------------


@dataclass
class _TrackState:
    type: str
    note_ids: set[str] = field(default_factory=set)


def _fmt(value: float) -> str:
    return f"{value:g}"


def _quote_all(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in values)


class _Checker:
    """The project as the actions so far leave it, and the problems found on the way."""

    def __init__(self, context: DawContext) -> None:
        self.tracks: dict[str, _TrackState] = {}
        for track in context.project.tracks:
            ids = {note.id for note in track.notes or () if note.id is not None}
            self.tracks[track.id] = _TrackState(track.type, ids)
        self.deleted: dict[str, int] = {}
        """Track id -> index of the action that deleted it."""
        self.unnamed_tracks = 0
        """``addTrack``s without a ``trackId`` so far (hint in unknown-track messages)."""
        self.problems: list[tuple[int, Problem]] = []
        self.index = 0

    def problem(self, path: str, message: str) -> None:
        self.problems.append((self.index, Problem(path=path, message=message)))

    # ranges

    def within(self, path: str, value: float, lo: float, hi: float, what: str) -> None:
        if not (math.isfinite(value) and lo <= value <= hi):
            self.problem(path, f"{what} must be between {_fmt(lo)} and {_fmt(hi)}, got {value!r}")

    def beats(self, path: str, value: float, what: str, *, positive: bool) -> None:
        if not math.isfinite(value):
            self.problem(path, f"{what} must be a finite number of beats, got {value!r}")
        elif positive and value <= 0:
            self.problem(path, f"{what} must be more than 0 beats, got {value!r}")
        elif not positive and value < 0:
            self.problem(path, f"{what} must be at least 0 beats, got {value!r}")

    def not_empty(self, path: str, value: str, what: str) -> None:
        if not value.strip():
            self.problem(path, f"{what} must not be empty")

    # references

    def track(self, path: str, track_id: str) -> _TrackState | None:
        state = self.tracks.get(track_id)
        if state is not None:
            return state
        if track_id in self.deleted:
            by = self.deleted[track_id]
            self.problem(path, f"track {track_id!r} was deleted by $.actions[{by}]")
            return None
        known = list(self.tracks)
        message = f"unknown track id {track_id!r}; tracks: {_quote_all(known[:20]) or 'none'}"
        if self.unnamed_tracks:
            message += " (an addTrack needs a trackId for later actions to name its track)"
        self.problem(path, message)
        return None

    def note_track(self, path: str, track_id: str) -> _TrackState | None:
        state = self.track(path, track_id)
        if state is not None and state.type == "audio":
            self.problem(
                path, f"track {track_id!r} is an audio track; notes go on midi or drum tracks"
            )
        return state

    # the actions

    def check(self, index: int, action: Action) -> None:
        self.index = index
        p = f"$.actions[{index}]"
        self.not_empty(f"{p}.description", action.description, "description")
        match action:
            case AddTrack():
                self.add_track(p, action)
            case DeleteTrack():
                if self.track(f"{p}.trackId", action.track_id) is not None:
                    del self.tracks[action.track_id]
                    self.deleted[action.track_id] = index
            case AddNotes():
                self.add_notes(p, action)
            case UpdateNotes():
                self.update_notes(p, action)
            case DeleteNotes():
                state = self.note_track(f"{p}.trackId", action.track_id)
                for j, note_id in enumerate(action.note_ids):
                    if state is None:
                        continue
                    if note_id in state.note_ids:
                        state.note_ids.discard(note_id)
                    else:
                        self.problem(
                            f"{p}.noteIds[{j}]",
                            f"no note with id {note_id!r} on track {action.track_id!r}",
                        )
            case SetTempo():
                self.within(f"{p}.tempo", action.tempo, MIN_TEMPO, MAX_TEMPO, "tempo (BPM)")
            case SetKey():
                if parse_key(action.key) is None:
                    self.problem(
                        f"{p}.key",
                        f"not a key name: {action.key!r}; "
                        "write e.g. 'C', 'A minor', 'F# major', 'Bb dorian'",
                    )
            case SetTrackParams():
                self.set_track_params(p, action)
            case AddEffect():
                self.track(f"{p}.trackId", action.track_id)
                if action.effect not in EFFECTS:
                    self.problem(
                        f"{p}.effect",
                        f"unknown effect {action.effect!r}; one of {_quote_all(EFFECTS)}",
                    )
                for name, value in action.params.items():
                    path = f"{p}.params.{name}" if name.isidentifier() else f"{p}.params[{name!r}]"
                    if not name.strip():
                        self.problem(path, "a parameter needs a name")
                    elif not math.isfinite(value):
                        self.problem(path, f"must be a finite number, got {value!r}")
            case _:
                assert_never(action)

    def add_track(self, p: str, action: AddTrack) -> None:
        self.not_empty(f"{p}.name", action.name, "name")
        if action.track_type not in TRACK_TYPES:
            self.problem(
                f"{p}.trackType",
                f"unknown track type {action.track_type!r}; one of {_quote_all(TRACK_TYPES)}",
            )
        if action.volume is not None:
            self.within(f"{p}.volume", action.volume, MIN_VOLUME, MAX_VOLUME, "volume")
        if action.pan is not None:
            self.within(f"{p}.pan", action.pan, MIN_PAN, MAX_PAN, "pan")
        if action.track_id is None:
            self.unnamed_tracks += 1
        elif action.track_id in self.tracks:
            self.problem(f"{p}.trackId", f"track id {action.track_id!r} already exists")
        else:
            self.tracks[action.track_id] = _TrackState(action.track_type)
            self.deleted.pop(action.track_id, None)

    def note_fields(
        self,
        p: str,
        pitch: int | None,
        start: float | None,
        duration: float | None,
        velocity: int | None,
    ) -> None:
        if pitch is not None:
            self.within(f"{p}.pitch", pitch, MIN_PITCH, MAX_PITCH, "pitch")
        if start is not None:
            self.beats(f"{p}.start", start, "start", positive=False)
        if duration is not None:
            self.beats(f"{p}.duration", duration, "duration", positive=True)
        if velocity is not None:
            self.within(f"{p}.velocity", velocity, MIN_VELOCITY, MAX_VELOCITY, "velocity")

    def add_notes(self, p: str, action: AddNotes) -> None:
        state = self.note_track(f"{p}.trackId", action.track_id)
        if not action.notes:
            self.problem(f"{p}.notes", "needs at least one note")
        for j, note in enumerate(action.notes):
            q = f"{p}.notes[{j}]"
            self.note_fields(q, note.pitch, note.start, note.duration, note.velocity)
            if note.id is None or state is None:
                continue
            if note.id in state.note_ids:
                self.problem(
                    f"{q}.id", f"note id {note.id!r} already exists on track {action.track_id!r}"
                )
            state.note_ids.add(note.id)

    def update_notes(self, p: str, action: UpdateNotes) -> None:
        state = self.note_track(f"{p}.trackId", action.track_id)
        if not action.notes:
            self.problem(f"{p}.notes", "needs at least one note")
        for j, note in enumerate(action.notes):
            q = f"{p}.notes[{j}]"
            if state is not None and note.id not in state.note_ids:
                self.problem(f"{q}.id", f"no note with id {note.id!r} on track {action.track_id!r}")
            fields = (note.pitch, note.start, note.duration, note.velocity)
            if all(value is None for value in fields):
                self.problem(q, "changes nothing; give pitch, start, duration or velocity")
            self.note_fields(q, *fields)

    def set_track_params(self, p: str, action: SetTrackParams) -> None:
        self.track(f"{p}.trackId", action.track_id)
        if action.name is not None:
            self.not_empty(f"{p}.name", action.name, "name")
        if action.volume is not None:
            self.within(f"{p}.volume", action.volume, MIN_VOLUME, MAX_VOLUME, "volume")
        if action.pan is not None:
            self.within(f"{p}.pan", action.pan, MIN_PAN, MAX_PAN, "pan")
        if (action.name, action.volume, action.pan, action.muted) == (None, None, None, None):
            self.problem(p, "sets nothing; give name, volume, pan or muted")


def _validate(
    indexed: Iterable[tuple[int, Action]],
    context: DawContext,
    placeholders: dict[int, str] | None = None,
) -> list[tuple[int, Problem]]:
    checker = _Checker(context)
    actions = dict(indexed)
    for index in sorted(actions.keys() | (placeholders or {}).keys()):
        if index in actions:
            checker.check(index, actions[index])
        else:
            # An addTrack that did not decode still declares its track, so that later
            # actions naming it are not reported as well: one mistake, one problem.
            track_id = (placeholders or {})[index]
            checker.tracks.setdefault(track_id, _TrackState("midi"))
            checker.deleted.pop(track_id, None)
    return checker.problems


def validate_actions(actions: Sequence[Action], context: DawContext) -> list[Problem]:
    """Every problem of ``actions`` against ``context``, in action order; [] if none.

    Checks, besides the ranges the types state (a struct built in Python is checked
    here, not on construction): that a named track exists in the context or was added
    by an earlier ``addTrack`` and not deleted since; that a note id given to
    ``updateNotes`` or ``deleteNotes`` is on that track (in the context or added
    earlier) and a new note id is not; that notes go on ``midi`` or ``drum`` tracks;
    that ``setKey`` names a key (:func:`parse_key`) and ``addEffect`` a known effect;
    that ``setTrackParams`` and each ``updateNotes`` entry change something; that each
    description is not blank.
    """
    return [problem for _, problem in _validate(enumerate(actions), context)]


# --- decoding ------------------------------------------------------------------------

_FENCE: Final = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
"""A fenced block, its info string (``json``) left out; an unclosed one runs to the end."""
_AT: Final = re.compile(r"^(.*?) - at `\$(.*)`$", re.DOTALL)
_MISSING: Final = re.compile(r"^Object missing required field `([^`]+)`$")
_CHOICES: Final[dict[str, tuple[str, ...]]] = {
    ".type": ACTION_TYPES,
    ".trackType": TRACK_TYPES,
    ".effect": EFFECTS,
}
_MAX_SCANS: Final = 2000
"""Brace positions tried when looking for JSON inside prose."""


class _Decoded(NamedTuple):
    actions: list[tuple[int, Action]]
    problems: list[tuple[int, Problem]]
    placeholders: dict[int, str]
    """Index -> trackId of an ``addTrack`` that did not decode."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _looks_like_actions(value: Any) -> bool:
    if isinstance(value, dict):
        return "actions" in value
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _find_json(text: str) -> tuple[Any, Problem | None]:
    """The JSON value in the model's output, tried in this order: the whole text; a
    fenced block holding ``{"actions": ...}`` or an array of objects; the first such
    value in the prose; action objects standing on their own in the prose (one per
    line, say), as a list; the first fenced block that parses at all."""
    with contextlib.suppress(ValueError):  # prose around it: its error is not the news
        return _loads(text.strip()), None
    fence_error: str | None = None
    fenced: list[Any] = []
    for block in _FENCE.findall(text):
        try:
            value = _loads(block.strip())
        except ValueError as exc:
            fence_error = fence_error or str(exc)
            continue
        if _looks_like_actions(value):
            return value, None
        fenced.append(value)
    # Prose with JSON inside. The first error is the outermost structure's, which is
    # the one to repair; after one, what parses may be nested in the broken structure
    # (an inner array is still taken whole, but lone action objects no longer are: that
    # would drop their broken siblings without a word).
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    scan_error: str | None = None
    loose: list[Any] = []
    position, scans = 0, 0
    while scans < _MAX_SCANS:
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        scans += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError as exc:
            scan_error = scan_error or str(exc)
            position = start + 1
            continue
        if _looks_like_actions(value):
            return value, None
        if scan_error is None and isinstance(value, dict) and "type" in value:
            loose.append(value)
        position = end
    if loose and scan_error is None:
        return loose, None
    if fenced:
        return fenced[0], None
    if scans == 0:
        message = 'no JSON in the output; expected {"actions": [...]}'
    elif fence_error or scan_error:
        message = f"invalid JSON: {fence_error or scan_error}"
    else:
        message = 'no {"actions": [...]} and no array of actions in the output'
    return None, Problem(path="$", message=message)


def _items(value: Any) -> tuple[list[Any], Problem | None]:
    if isinstance(value, list):
        return value, None
    if isinstance(value, dict) and "actions" in value:
        actions = value["actions"]
        if isinstance(actions, list):
            return actions, None
        return [], Problem(
            path="$.actions", message=f"expected an array of actions, got {_json_type(actions)}"
        )
    if isinstance(value, dict) and "type" in value:
        return [value], None  # one action on its own
    return [], Problem(
        path="$",
        message=f'expected {{"actions": [...]}} or an array of actions, got {_json_type(value)}',
    )


def _item_problem(index: int, error: msgspec.ValidationError) -> Problem:
    message, where = str(error), ""
    if (at := _AT.match(message)) is not None:
        message, where = at.group(1), at.group(2)
    if (missing := _MISSING.match(message)) is not None:
        where += f".{missing.group(1)}"
        message = "required field is missing"
    elif message.startswith(("Invalid value", "Invalid enum value")):
        for suffix, choices in _CHOICES.items():
            if where.endswith(suffix):
                message += f"; expected one of {_quote_all(choices)}"
    return Problem(path=f"$.actions[{index}]{where}", message=message)


def _decode(raw: bytes | str) -> _Decoded:
    decoded = _Decoded([], [], {})
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            decoded.problems.append((-1, Problem(path="$", message=f"not UTF-8: {exc.reason}")))
            return decoded
    value, problem = _find_json(raw)
    if problem is None:
        items, problem = _items(value)
    if problem is not None:
        decoded.problems.append((-1, problem))
        return decoded
    for index, item in enumerate(items):
        try:
            action: Action = msgspec.convert(item, Action)
        except msgspec.ValidationError as exc:
            decoded.problems.append((index, _item_problem(index, exc)))
            if isinstance(item, dict) and item.get("type") == "addTrack":
                track_id = item.get("trackId")
                if isinstance(track_id, str) and track_id:
                    decoded.placeholders[index] = track_id
        else:
            decoded.actions.append((index, action))
    return decoded


def decode_actions(raw_json: bytes | str) -> tuple[list[Action], list[Problem]]:
    """The actions in a model's output, and the problems of the items that are not.

    Tolerates prose around the JSON, fenced (```json) blocks, and either
    ``{"actions": [...]}`` (other keys ignored), a bare array, one action object, or
    action objects one after another (JSON Lines).
    Each item is decoded on its own: the actions returned are those that fit the
    schema, in order, and each one that does not gives one problem (the first msgspec
    finds) at its path in the model's list. Nothing here looks at a context: see
    :func:`check_actions` for both steps with paths that stay the model's.
    """
    decoded = _decode(raw_json)
    return [action for _, action in decoded.actions], [p for _, p in decoded.problems]


def check_actions(raw_json: bytes | str, context: DawContext) -> tuple[list[Action], list[Problem]]:
    """:func:`decode_actions`, then :func:`validate_actions` on what decoded.

    The problems are in the order of the model's list and their paths index it, even
    where items that did not decode are missing from the actions returned. The output
    is usable as it is only when the problems are [].
    """
    decoded = _decode(raw_json)
    found = decoded.problems + _validate(decoded.actions, context, decoded.placeholders)
    found.sort(key=lambda pair: pair[0])  # stable: an action's own problems keep order
    return [action for _, action in decoded.actions], [p for _, p in found]


# --- applying ------------------------------------------------------------------------


def _new_track_ids(context: DawContext, actions: Sequence[Action]) -> Iterable[str]:
    """``track-N`` ids for the ``addTrack``s without one: never an id in the context or
    one that any action of the list names."""
    taken = {track.id for track in context.project.tracks}
    taken |= {a.track_id for a in actions if isinstance(a, AddTrack) and a.track_id}
    n = 0
    while True:
        n += 1
        if f"track-{n}" not in taken:
            yield f"track-{n}"


def _copy(context: DawContext) -> DawContext:
    """A copy of everything ``apply_actions`` may change: ~20x faster than
    ``copy.deepcopy`` on a big project, and, unlike a decode, not held to the caps a
    client's context is (the actions may add the track past them)."""
    replace = msgspec.structs.replace
    tracks = [
        replace(
            t,
            notes=None if t.notes is None else [replace(n) for n in t.notes],
            effects=None
            if t.effects is None
            else [replace(e, params=dict(e.params)) for e in t.effects],
        )
        for t in context.project.tracks
    ]
    return replace(context, project=replace(context.project, tracks=tracks))


def apply_actions(context: DawContext, actions: Sequence[Action]) -> DawContext:
    """The context after ``actions``, in order; ``context`` itself is left as it was.

    Raises :class:`InvalidActionsError` when :func:`validate_actions` finds problems.
    A track is added at the end, with :data:`~yamabiko.schema.daw.DEFAULT_VOLUME`, pan 0
    and unmuted unless given, ``notes: []`` unless it is an audio track, and the id
    ``track-N`` (the lowest N free) if the action gave none. Notes are added after a
    track's notes; no note id is made up. Deleting the selected track clears
    ``selectedTrackId``. ``setKey`` stores the key as written.
    """
    problems = validate_actions(actions, context)
    if problems:
        raise InvalidActionsError(problems)
    result = _copy(context)
    project = result.project
    new_ids = iter(_new_track_ids(context, actions))

    def track(track_id: str) -> Track:
        return next(t for t in project.tracks if t.id == track_id)

    for action in actions:
        match action:
            case AddTrack():
                project.tracks.append(
                    Track(
                        id=action.track_id or next(new_ids),
                        name=action.name,
                        type=action.track_type,
                        volume=DEFAULT_VOLUME if action.volume is None else action.volume,
                        pan=0.0 if action.pan is None else action.pan,
                        muted=False,
                        notes=None if action.track_type == "audio" else [],
                    )
                )
            case DeleteTrack():
                project.tracks = [t for t in project.tracks if t.id != action.track_id]
                if result.selected_track_id == action.track_id:
                    result.selected_track_id = None
            case AddNotes():
                target = track(action.track_id)
                target.notes = [*(target.notes or []), *copy.deepcopy(action.notes)]
            case UpdateNotes():
                target = track(action.track_id)
                changes = {update.id: update for update in action.notes}
                notes: list[Note] = []
                for note in target.notes or []:
                    if note.id is not None and note.id in changes:
                        update = changes[note.id]
                        note = msgspec.structs.replace(
                            note,
                            pitch=note.pitch if update.pitch is None else update.pitch,
                            start=note.start if update.start is None else update.start,
                            duration=note.duration if update.duration is None else update.duration,
                            velocity=note.velocity if update.velocity is None else update.velocity,
                        )
                    notes.append(note)
                target.notes = notes
            case DeleteNotes():
                target = track(action.track_id)
                gone = set(action.note_ids)
                target.notes = [n for n in target.notes or [] if n.id not in gone]
            case SetTempo():
                project.tempo = action.tempo
            case SetKey():
                project.key = action.key
            case SetTrackParams():
                target = track(action.track_id)
                if action.name is not None:
                    target.name = action.name
                if action.volume is not None:
                    target.volume = action.volume
                if action.pan is not None:
                    target.pan = action.pan
                if action.muted is not None:
                    target.muted = action.muted
            case AddEffect():
                target = track(action.track_id)
                effect = Effect(effect=action.effect, params=dict(action.params))
                target.effects = [*(target.effects or []), effect]
            case _:
                assert_never(action)
    return result
