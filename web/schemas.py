"""What the web API accepts and returns (pydantic): one GenerationRequest for every family."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

JOB_ID = re.compile(r"^[0-9a-f]{32}$")  # uuid4().hex: nothing else reaches the file system


class Region(BaseModel):
    """[start_step, end_step) on the 16th-note grid of the source piece (the page snaps to beats)."""
    model_config = ConfigDict(extra="forbid")
    start_step: int = Field(ge=0)
    end_step: int = Field(gt=0)

    @model_validator(mode="after")
    def ordered(self) -> Region:
        if self.end_step <= self.start_step:
            raise ValueError(f"region end_step ({self.end_step}) must be > start_step ({self.start_step})")
        return self


class Note(BaseModel):
    """A note of an edited piece, on the 16th-note grid (the page's note editor sends these)."""
    model_config = ConfigDict(extra="forbid")
    pitch: int = Field(ge=0, le=127)
    start: int = Field(ge=0)            # step
    duration: int = Field(ge=1, le=255)  # steps
    velocity: int = Field(default=80, ge=1, le=127)


class GenerationRequest(BaseModel):
    """POST /jobs. `model` names a configured checkpoint (GET /models); null = the default one.

    midi_use says what an uploaded MIDI is for:
      chroma        fractal: the global chroma (pitch-class profile) of the new piece
      source        fractal: the piece that `region` / `target_levels` regenerate parts of
      conditioning  token families: the Music Transformer's conditioning (role checkpoints:
                    the part is generated over it; others: continued as a prompt)
    source_job: a finished job whose result is the source piece (the page's inpainting);
    source_notes: that piece with the user's note edits (replaces its notes, keeps its length).
    """
    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    length_bars: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, gt=0, le=5)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    max_new_tokens: int | None = Field(default=None, ge=1)
    midi_use: Literal["chroma", "source", "conditioning"] | None = None
    source_job: str | None = None
    source_notes: list[Note] | None = None
    target_levels: list[int] | None = None
    region: Region | None = None

    @model_validator(mode="after")
    def consistent(self) -> GenerationRequest:
        if self.source_job is not None and not JOB_ID.match(self.source_job):
            raise ValueError("source_job must be a job id (32 hex characters)")
        if self.source_notes is not None and self.source_job is None:
            raise ValueError("source_notes are edits of a result: pass its source_job too")
        if self.target_levels is not None:
            if not self.target_levels or min(self.target_levels) < 0:
                raise ValueError("target_levels: a non-empty list of level indices >= 0")
            self.target_levels = sorted(set(self.target_levels))
        return self


class JobCreated(BaseModel):
    job_id: str
    status: str
    events: str  # the websocket path
