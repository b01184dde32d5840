"""The DAW model of ``agent/run`` (docs/agent.md): the project context and actions.

Types only; the checks that need the context (a track id must exist, a key name must
parse) and applying actions to a context live in :mod:`yamabiko.engines.agent.validate`.

The context a client sends::

    {"project": {"name": "Demo", "tempo": 120, "key": "A minor", "timeSignature": "4/4",
                 "tracks": [{"id": "t1", "name": "Bass", "type": "midi", "volume": 0.8,
                             "pan": 0, "muted": false, "notes": [...]}]},
     "selectedTrackId": "t1", "playhead": 16}

Decisions where the design is silent:

- Times (``start``, ``duration``, ``playhead``) are in beats (quarter notes in 4/4)
  from the start of the project; ``timeSignature`` is a string, ``"4/4"``, ``"6/8"``.
  Front ends also send ``[6, 8]`` and ``{"numerator": 6, "denominator": 8}``: the
  project accepts all three and keeps (and returns) the string form.
- ``volume`` is linear gain from 0 (silent) to 1 (unity); ``pan`` runs from -1 (left)
  to 1 (right).
- An action's ``type`` is its tag, so ``addTrack`` names the new track's type
  ``trackType`` (``midi|audio|drum``), and ``addEffect`` names the effect ``effect``.
- ``updateNotes`` is a partial update: each entry names a note by ``id`` and replaces
  only the fields it gives.
- A track may carry ``effects`` (what ``addEffect`` added), in the order added; a
  client that keeps effects elsewhere may leave it out.

Ranges the types can state (pitch, velocity, beats, tempo, volume, pan) are checked when
the JSON is decoded; a struct built in Python is not checked until it is validated.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, get_args

from msgspec import Meta, Struct

MIN_PITCH: Final = 0
MAX_TRACKS: Final = 1000
"""Tracks in a context: more than large studio sessions hold. The caps keep planning
and checking a context to milliseconds (docs/agent.md)."""
MAX_CONTEXT_NOTES: Final = 50_000
"""Notes in a context, all tracks together (and so on any one track)."""
MAX_EFFECTS: Final = 32
"""Effects on one track."""
MAX_PITCH: Final = 127
MIN_VELOCITY: Final = 1
MAX_VELOCITY: Final = 127
MIN_TEMPO: Final = 20.0
MAX_TEMPO: Final = 300.0
MIN_VOLUME: Final = 0.0
MAX_VOLUME: Final = 1.0
MIN_PAN: Final = -1.0
MAX_PAN: Final = 1.0

TrackType = Literal["midi", "audio", "drum"]
"""``audio`` tracks hold recordings, never notes; ``midi`` and ``drum`` tracks hold notes
(on a ``drum`` track a pitch names a drum, General MIDI style: 36 kick, 38 snare...)."""
TRACK_TYPES: Final[tuple[str, ...]] = get_args(TrackType)

EffectName = Literal["reverb", "delay", "eq", "compressor", "distortion", "chorus"]
EFFECTS: Final[tuple[str, ...]] = get_args(EffectName)

Pitch = Annotated[int, Meta(ge=MIN_PITCH, le=MAX_PITCH)]
"""A MIDI note number: 60 is middle C."""
Velocity = Annotated[int, Meta(ge=MIN_VELOCITY, le=MAX_VELOCITY)]
Beats = Annotated[float, Meta(ge=0.0)]
"""A time in beats from the start of the project."""
Duration = Annotated[float, Meta(gt=0.0)]
"""A length in beats, more than zero."""
Tempo = Annotated[float, Meta(ge=MIN_TEMPO, le=MAX_TEMPO)]
"""Beats per minute."""
Volume = Annotated[float, Meta(ge=MIN_VOLUME, le=MAX_VOLUME)]
Pan = Annotated[float, Meta(ge=MIN_PAN, le=MAX_PAN)]
TrackId = Annotated[str, Meta(min_length=1, max_length=64)]
NoteId = Annotated[str, Meta(min_length=1, max_length=64)]
TrackName = Annotated[str, Meta(min_length=1, max_length=100)]
KeyName = Annotated[str, Meta(min_length=1, max_length=40)]
"""``C``, ``A minor``, ``Am``, ``F# major``, ``Bb dorian`` (the parser:
:func:`yamabiko.engines.agent.validate.parse_key`)."""
TimeSignature = Annotated[str, Meta(pattern=r"^[1-9][0-9]?/(1|2|4|8|16|32)$")]
"""``numerator/denominator``: ``4/4``, ``3/4``, ``6/8``, ``7/8``."""
Numerator = Annotated[int, Meta(ge=1, le=99)]
"""Beats in a bar (what :data:`TimeSignature`'s pattern allows)."""
Denominator = Literal[1, 2, 4, 8, 16, 32]
"""The note value of a beat."""
Description = Annotated[str, Meta(min_length=1, max_length=2000)]
"""What the action does, in words the user reads."""


class DawStruct(Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Base of the DAW types: camelCase on the wire, defaults left out."""


class Note(DawStruct, kw_only=True):
    """One note. ``id`` is optional, but only a note with one can be updated or deleted."""

    id: NoteId | None = None
    pitch: Pitch
    start: Beats
    duration: Duration
    velocity: Velocity


class NoteUpdate(DawStruct):
    """The note ``id`` with the fields given replaced; the others are kept."""

    id: NoteId
    pitch: Pitch | None = None
    start: Beats | None = None
    duration: Duration | None = None
    velocity: Velocity | None = None


class Effect(DawStruct):
    """An effect on a track, as ``addEffect`` added it."""

    effect: EffectName
    params: dict[str, float] = {}
    """Effect-specific settings, e.g. ``{"mix": 0.3, "decay": 2.5}`` for a reverb."""


class Track(DawStruct):
    id: TrackId
    name: TrackName
    type: TrackType
    volume: Volume
    pan: Pan
    muted: bool
    notes: Annotated[list[Note], Meta(max_length=MAX_CONTEXT_NOTES)] | None = None
    """None: not sent (an audio track, or a client that leaves notes out)."""
    effects: Annotated[list[Effect], Meta(max_length=MAX_EFFECTS)] | None = None


class TimeSignatureParts(DawStruct, forbid_unknown_fields=True):
    """``{"numerator": 6, "denominator": 8}``, as some front ends send it."""

    numerator: Numerator
    denominator: Denominator


AnyTimeSignature = TimeSignature | tuple[Numerator, Denominator] | TimeSignatureParts
"""What a project's ``timeSignature`` may be sent as; kept as :data:`TimeSignature`."""


def time_signature_text(value: AnyTimeSignature) -> str:
    """The string form, ``"6/8"``, of any accepted shape."""
    if isinstance(value, str):
        return value
    if isinstance(value, TimeSignatureParts):
        return f"{value.numerator}/{value.denominator}"
    numerator, denominator = value
    return f"{numerator}/{denominator}"


class Project(DawStruct):
    name: str
    tempo: Tempo
    key: str
    """The project's key as the client names it; ``setKey`` values must parse."""
    time_signature: AnyTimeSignature
    """Sent in any of the three shapes; always the string form once decoded (see
    :attr:`signature`)."""
    tracks: Annotated[list[Track], Meta(max_length=MAX_TRACKS)]

    def __post_init__(self) -> None:
        # One form inside the server, and on the wire back: the string.
        if not isinstance(self.time_signature, str):
            self.time_signature = time_signature_text(self.time_signature)

    @property
    def signature(self) -> str:
        """The time signature as ``"numerator/denominator"``."""
        return time_signature_text(self.time_signature)


class DawContext(DawStruct):
    """The DAW state an agent sees and acts on (``agent/run``'s ``context``)."""

    project: Project
    selected_track_id: TrackId | None = None
    playhead: Beats | None = None
    """The playhead position, in beats."""


class ActionBase(DawStruct, tag_field="type"):
    """Base of the actions: a tagged union on ``type``, each with a ``description``."""

    description: Description


class AddTrack(ActionBase, tag="addTrack", kw_only=True):
    """A new, empty track at the end of the project.

    Without ``trackId`` the track gets an id when applied and no later action in the
    same list can name it: give one to refer to it later. Volume and pan default to
    :data:`DEFAULT_VOLUME` and 0; the track starts unmuted.
    """

    track_id: TrackId | None = None
    name: TrackName
    track_type: TrackType
    """The new track's ``type`` (``type`` itself is the action's tag)."""
    volume: Volume | None = None
    pan: Pan | None = None


class DeleteTrack(ActionBase, tag="deleteTrack"):
    track_id: TrackId


class AddNotes(ActionBase, tag="addNotes"):
    """Notes added to a ``midi`` or ``drum`` track, after the notes it has."""

    track_id: TrackId
    notes: Annotated[list[Note], Meta(min_length=1)]


class UpdateNotes(ActionBase, tag="updateNotes"):
    track_id: TrackId
    notes: Annotated[list[NoteUpdate], Meta(min_length=1)]


class DeleteNotes(ActionBase, tag="deleteNotes"):
    track_id: TrackId
    note_ids: Annotated[list[NoteId], Meta(min_length=1)]


class SetTempo(ActionBase, tag="setTempo"):
    tempo: Tempo


class SetKey(ActionBase, tag="setKey"):
    key: KeyName


class SetTrackParams(ActionBase, tag="setTrackParams"):
    """Changes the fields given (at least one) of a track."""

    track_id: TrackId
    name: TrackName | None = None
    volume: Volume | None = None
    pan: Pan | None = None
    muted: bool | None = None


class AddEffect(ActionBase, tag="addEffect"):
    """An effect appended to a track's effect chain."""

    track_id: TrackId
    effect: EffectName
    params: dict[str, float] = {}


Action = (
    AddTrack
    | DeleteTrack
    | AddNotes
    | UpdateNotes
    | DeleteNotes
    | SetTempo
    | SetKey
    | SetTrackParams
    | AddEffect
)
"""One action; decode with ``msgspec.convert(obj, Action)`` or a ``list[Action]``."""

ACTION_TYPES: Final[tuple[str, ...]] = (
    "addTrack",
    "deleteTrack",
    "addNotes",
    "updateNotes",
    "deleteNotes",
    "setTempo",
    "setKey",
    "setTrackParams",
    "addEffect",
)

DEFAULT_VOLUME: Final = 0.8
"""The volume of a track added without one."""


class Problem(DawStruct):
    """Why an action (or the model output) was refused: where, and what is wrong.

    ``path`` is a JSONPath into ``{"actions": [...]}``, e.g. ``$.actions[2].notes[0].pitch``;
    ``$`` for output that holds no actions at all.
    """

    path: str
    message: str
