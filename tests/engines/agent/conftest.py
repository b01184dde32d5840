"""A small project to act on: a midi bass with notes, an audio vocal, an empty drum track."""

from __future__ import annotations

import pytest

from yamabiko.schema.daw import DawContext, Note, Project, Track


def make_context() -> DawContext:
    return DawContext(
        project=Project(
            name="Demo",
            tempo=120.0,
            key="A minor",
            time_signature="4/4",
            tracks=[
                Track(
                    id="bass",
                    name="Bass",
                    type="midi",
                    volume=0.8,
                    pan=0.0,
                    muted=False,
                    notes=[
                        Note(id="n1", pitch=45, start=0.0, duration=1.0, velocity=100),
                        Note(id="n2", pitch=48, start=1.0, duration=1.0, velocity=90),
                        Note(pitch=52, start=2.0, duration=2.0, velocity=80),
                    ],
                ),
                Track(id="vox", name="Vocals", type="audio", volume=1.0, pan=0.0, muted=False),
                Track(
                    id="drums", name="Drums", type="drum", volume=0.7, pan=0.0, muted=True, notes=[]
                ),
            ],
        ),
        selected_track_id="bass",
        playhead=4.0,
    )


@pytest.fixture
def context() -> DawContext:
    return make_context()
