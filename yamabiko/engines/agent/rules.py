"""The offline planner: common DAW requests understood by rules, so ``agent/run`` is
useful with no provider key.

A prompt is split into clauses ("set the tempo to 128 and add a bassline in A minor on
a new track" is two); each clause is matched against the rules below, in order, and
planned against the context as the earlier clauses leave it. :func:`plan_clause`
plans one clause (``apply: client`` runs one clause a step); :func:`plan` all of them.

What it understands (case-insensitive):

- tempo: "tempo to 128", "128 bpm", "faster"/"slower" (±10 BPM);
- key: "key (to|of) A minor", "change the key to D";
- parts: "add a bassline | drums | beat | chords | melody | harmony [in A minor]
  [on a new track | on the <name> track | on the selected track]" — written by the music
  engine (:mod:`yamabiko.engines.music`), in the project's key and time signature
  unless the clause names a key, and with the clause's words (style, "walking",
  "busier") as its prompt;
- tracks: "add a track called Pads", "delete | remove the <name> track",
  "mute | unmute | solo the <name>";
- notes: "transpose <track> up | down N semitones | an octave", "quantize <track> [to
  1/16]", "humanize <track>", "make <track> louder | softer", "velocity 90 on <track>".

A clause nothing matches is reported in the plan's ``unknown`` (the handler says so in
the summary) rather than guessed at. Deterministic for a seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from yamabiko.engines.agent.validate import apply_actions, parse_key
from yamabiko.engines.music import DEFAULT_KEY, generate
from yamabiko.engines.music import Note as MusicNote
from yamabiko.schema.daw import (
    MAX_TEMPO,
    MIN_TEMPO,
    Action,
    AddNotes,
    AddTrack,
    DawContext,
    DeleteTrack,
    Note,
    NoteUpdate,
    SetKey,
    SetTempo,
    SetTrackParams,
    Track,
    TrackType,
    UpdateNotes,
)

_SPLIT: Final = re.compile(
    r"\s*(?:,\s*(?:and\s+|then\s+)?|\band then\b|\bthen\b|\band\b|;)\s*", re.I
)
_TEMPO: Final = re.compile(
    r"(?:tempo|bpm)\D{0,12}?(\d{2,3}(?:\.\d+)?)|(\d{2,3}(?:\.\d+)?)\s*bpm", re.I
)
_KEY_IN: Final = re.compile(
    r"\b(?:in|key(?: of| to)?|to)\s+([A-G](?:#|b|♯|♭)?(?:\s*(?:major|minor|maj|min|m|dorian|"
    r"mixolydian|lydian|phrygian|locrian|harmonic minor|melodic minor))?)\b"
)
_PARTS: Final[dict[str, tuple[str, str, TrackType]]] = {
    "bassline": ("bassline", "Bass", "midi"),
    "bass line": ("bassline", "Bass", "midi"),
    "bass": ("bassline", "Bass", "midi"),
    "drums": ("drum_pattern", "Drums", "drum"),
    "drum pattern": ("drum_pattern", "Drums", "drum"),
    "beat": ("drum_pattern", "Drums", "drum"),
    "groove": ("drum_pattern", "Drums", "drum"),
    "chords": ("chord_progression", "Chords", "midi"),
    "chord progression": ("chord_progression", "Chords", "midi"),
    "progression": ("chord_progression", "Chords", "midi"),
    "melody": ("melody", "Melody", "midi"),
    "lead": ("melody", "Lead", "midi"),
    "harmony": ("harmony", "Harmony", "midi"),
}
_NUMBER_WORDS: Final = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "a": 1, "an": 1}


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    """What each planned clause does, for the summary."""
    unknown: list[str] = field(default_factory=list)
    """Clauses nothing understood."""


def clauses(prompt: str) -> list[str]:
    return [c.strip(" .!") for c in _SPLIT.split(prompt) if c and c.strip(" .!")]


def plan(prompt: str, context: DawContext, *, seed: int = 0) -> Plan:
    """Every clause of ``prompt``, each against the context the earlier ones leave."""
    whole = Plan()
    for index, clause in enumerate(clauses(prompt)):
        step = plan_clause(clause, context, seed=seed + index)
        whole.actions += step.actions
        whole.done += step.done
        whole.unknown += step.unknown
        if step.actions:
            context = apply_actions(context, step.actions)
    return whole


def plan_clause(clause: str, context: DawContext, *, seed: int = 0) -> Plan:
    result = Plan()
    text = clause.lower()
    for rule in (_part, _tempo, _key, _track, _notes):
        if rule(clause, text, context, result, seed):
            return result
    result.unknown.append(clause)
    return result


# -- the rules: each returns True when it planned the clause ---------------------------


def _tempo(clause: str, text: str, context: DawContext, out: Plan, seed: int) -> bool:
    match = _TEMPO.search(clause)
    if match is not None:
        tempo = float(match.group(1) or match.group(2))
    elif "tempo" in text and ("faster" in text or "up" in text.split()):
        tempo = context.project.tempo + 10
    elif "tempo" in text and ("slower" in text or "down" in text.split()):
        tempo = context.project.tempo - 10
    elif text.strip() in ("faster", "slower", "speed it up", "slow it down"):
        tempo = context.project.tempo + (10 if "fast" in text or "up" in text else -10)
    else:
        return False
    asked = tempo
    tempo = max(MIN_TEMPO, min(MAX_TEMPO, tempo))
    # Said, never silent: the user asked for another tempo than the one they get.
    clamped = (
        f" (asked for {asked:g}: the range is {MIN_TEMPO:g}-{MAX_TEMPO:g} BPM)"
        if tempo != asked
        else ""
    )
    out.actions.append(
        SetTempo(description=f"Set the tempo to {tempo:g} BPM{clamped}", tempo=tempo)
    )
    out.done.append(f"tempo {tempo:g} BPM{clamped}")
    return True


def _key(clause: str, text: str, context: DawContext, out: Plan, seed: int) -> bool:
    if "key" not in text:
        return False
    match = _KEY_IN.search(clause)
    if match is None or parse_key(match.group(1)) is None:
        return False
    key = str(parse_key(match.group(1)))
    out.actions.append(SetKey(description=f"Set the key to {key}", key=key))
    out.done.append(f"key {key}")
    return True


def _part(clause: str, text: str, context: DawContext, out: Plan, seed: int) -> bool:
    if not re.search(r"\b(add|write|make|create|give|generate|put)\b", text):
        return False
    found = _part_word(text)
    if found is None:
        return False
    kind, default_name, track_type = _PARTS[found]
    project = context.project
    key_match = _KEY_IN.search(clause)
    key = project.key or DEFAULT_KEY
    if key_match is not None and parse_key(key_match.group(1)) is not None:
        key = key_match.group(1)
    target = None if "new track" in text else _named_track(text, context, exclude=found)
    if target is None and "selected" in text and context.selected_track_id:
        target = next((t for t in project.tracks if t.id == context.selected_track_id), None)
    bars = _bars(text)
    melody = None
    if kind == "harmony" and target is not None and target.notes:
        melody = [MusicNote(n.pitch, n.start, n.duration, n.velocity) for n in target.notes]
    generated = generate(
        kind,  # type: ignore[arg-type]
        key=key,
        tempo=project.tempo,
        bars=bars,
        time_signature=project.signature,
        prompt=clause,
        seed=seed,
        melody=melody,
    )
    if target is None or kind == "harmony":
        track_id = _new_track_id(context, out.actions, default_name)
        out.actions.append(
            AddTrack(
                description=f"Add a {default_name.lower()} track",
                track_id=track_id,
                name=_free_name(context, default_name),
                track_type=track_type,
            )
        )
    else:
        track_id = target.id
    notes = [
        Note(pitch=n.pitch, start=n.start, duration=n.duration, velocity=n.velocity)
        for n in generated.notes
    ]
    if notes:
        out.actions.append(
            AddNotes(description=generated.description, track_id=track_id, notes=notes)
        )
    out.done.append(generated.description)
    return True


def _track(clause: str, text: str, context: DawContext, out: Plan, seed: int) -> bool:
    if re.search(r"\b(delete|remove)\b", text):
        track = _named_track(text, context)
        if track is None:
            return False
        out.actions.append(
            DeleteTrack(description=f"Delete the {track.name} track", track_id=track.id)
        )
        out.done.append(f"deleted {track.name}")
        return True
    mute = re.search(r"\b(unmute|mute)\b", text)
    if mute is not None:
        track = _named_track(text, context)
        if track is None:
            return False
        muted = mute.group(1) == "mute"
        verb = "Mute" if muted else "Unmute"
        out.actions.append(
            SetTrackParams(description=f"{verb} {track.name}", track_id=track.id, muted=muted)
        )
        out.done.append(f"{verb.lower()}d {track.name}")
        return True
    called = re.search(
        r"\badd (?:a |an )?(?:new )?(midi |drum |audio )?track(?: called| named)? ?(.*)$", text
    )
    if called is not None:
        kind = (called.group(1) or "midi ").strip()
        name = clause[called.start(2) :].strip(" '\"") or f"Track {len(context.project.tracks) + 1}"
        track_type: TrackType = "drum" if kind == "drum" else "audio" if kind == "audio" else "midi"
        out.actions.append(
            AddTrack(
                description=f"Add the track {name}",
                track_id=_new_track_id(context, out.actions, name),
                name=name[:100],
                track_type=track_type,
            )
        )
        out.done.append(f"added track {name}")
        return True
    return False


def _notes(clause: str, text: str, context: DawContext, out: Plan, seed: int) -> bool:
    track = _named_track(text, context) or _selected(context)
    if track is None or not track.notes:
        return False
    notes = [(n.id, n) for n in track.notes if n.id is not None]
    if not notes:
        return False
    updates: list[NoteUpdate]
    if "transpose" in text or re.search(r"\b(up|down) (an? )?(octave|\d+ semitones?)", text):
        shift = _semitones(text)
        if shift == 0:
            return False
        updates = [NoteUpdate(id=i, pitch=max(0, min(127, n.pitch + shift))) for i, n in notes]
        what = f"transposed {track.name} {'up' if shift > 0 else 'down'} {abs(shift)} semitones"
    elif "quantize" in text:
        grid = _grid(text)
        updates = [NoteUpdate(id=i, start=round(n.start / grid) * grid) for i, n in notes]
        what = f"quantized {track.name} to 1/{round(4 / grid)}"
    elif "humanize" in text:
        rng = random.Random(seed)  # noqa: S311 - musical variation, not secrecy
        updates = [
            NoteUpdate(
                id=i,
                start=max(0.0, round(n.start + rng.uniform(-0.02, 0.02), 4)),
                velocity=max(1, min(127, n.velocity + rng.randint(-8, 8))),
            )
            for i, n in notes
        ]
        what = f"humanized {track.name}"
    elif re.search(r"\b(louder|softer|quieter|velocity)\b", text):
        set_to = re.search(r"velocity (?:to |of )?(\d{1,3})", text)

        def velocity(current: int) -> int:
            if set_to is not None:
                return int(set_to.group(1))
            return current + (16 if "louder" in text else -16)

        updates = [
            NoteUpdate(id=i, velocity=max(1, min(127, velocity(n.velocity)))) for i, n in notes
        ]
        what = f"changed the velocity of {track.name}"
    else:
        return False
    out.actions.append(
        UpdateNotes(description=what[:1].upper() + what[1:], track_id=track.id, notes=updates)
    )
    out.done.append(what)
    return True


# -- helpers ---------------------------------------------------------------------------


def _part_word(text: str) -> str | None:
    best: tuple[int, str] | None = None
    for word in _PARTS:
        match = re.search(rf"\b{re.escape(word)}\b", text)
        if match is not None and (
            best is None
            or match.start() < best[0]
            or (match.start() == best[0] and len(word) > len(best[1]))
        ):
            best = (match.start(), word)
    return best[1] if best else None


def _named_track(text: str, context: DawContext, *, exclude: str | None = None) -> Track | None:
    """The track the clause names (by name, or by a part word matching its name)."""
    for track in context.project.tracks:
        name = track.name.lower()
        # The substring test first: a regex per track of a big project costs a
        # compile each (the regex cache holds 512).
        if name and name in text and re.search(rf"\b{re.escape(name)}\b", text):
            if exclude is not None and name in exclude and f"on the {name}" not in text:
                continue
            return track
    return None


def _selected(context: DawContext) -> Track | None:
    return next((t for t in context.project.tracks if t.id == context.selected_track_id), None)


def _new_track_id(context: DawContext, planned: Sequence[Action], name: str) -> str:
    taken = {t.id for t in context.project.tracks}
    taken |= {a.track_id for a in planned if isinstance(a, AddTrack) and a.track_id}
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "track"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _free_name(context: DawContext, name: str) -> str:
    names = {t.name for t in context.project.tracks}
    candidate, n = name, 2
    while candidate in names:
        candidate, n = f"{name} {n}", n + 1
    return candidate


def _bars(text: str) -> int:
    match = re.search(r"(\d{1,2}|one|two|three|four|five)[ -]bars?", text)
    if match is None:
        return 4
    word = match.group(1)
    return max(1, min(64, int(word) if word.isdigit() else _NUMBER_WORDS[word]))


def _semitones(text: str) -> int:
    sign = -1 if re.search(r"\bdown\b", text) else 1
    if "octave" in text:
        return 12 * sign
    match = re.search(r"(\d{1,2}) semitones?", text)
    return sign * int(match.group(1)) if match else 0


def _grid(text: str) -> float:
    match = re.search(r"1/(\d{1,2})", text)
    division = int(match.group(1)) if match else 16
    return 4 / max(1, division)
