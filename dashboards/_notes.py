"""Notes on a study and on its trials, kept in the study storage as study user attributes.

A study's note is its user attribute ``note``; trial N's note is the study's user attribute
``note:trial:N``. Optuna refuses to change a finished trial (``set_trial_user_attr`` raises
``UpdateFinishedTrialError``), and every trial a user annotates is finished, so trial notes live on
the study, as optuna-dashboard keeps its own notes. A note is written only by a user's Save, one key
at a time, never deleting a key: a trial's recorded attributes are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NOTE_KEY = "note"
MAX_NOTE_CHARS = 20_000


def note_key(trial: int | None) -> str:
    """The study user attribute that holds the note of ``trial`` (of the study itself for None)."""
    return NOTE_KEY if trial is None else f"{NOTE_KEY}:trial:{trial}"


def read_note(storage: Any, study: str, trial: int | None = None) -> str:
    """The note of study ``study`` (or of its trial ``trial``); '' when there is none."""
    attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(study))
    value = attrs.get(note_key(trial), "")
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Saved:
    ok: bool
    message: str
    text: str  # what the storage holds now


def write_note(storage: Any, study: str, trial: int | None, text: str, *, expected: str) -> Saved:
    """Save ``text`` as the note, unless the stored note is no longer ``expected`` (what the user
    opened): then someone else changed it meanwhile and nothing is written, so no one's note is lost."""
    what = f"trial {trial}'s note" if trial is not None else "the study's note"
    if len(text) > MAX_NOTE_CHARS:
        return Saved(False, f"Not saved: {what} is {len(text):,} characters; at most {MAX_NOTE_CHARS:,}.", expected)
    study_id = storage.get_study_id_from_name(study)
    current = read_note(storage, study, trial)
    if current != expected:
        return Saved(
            False,
            f"Not saved: {what} was changed elsewhere since you opened it. Copy your text, reload the page "
            "and save again.",
            current,
        )
    if text == current:
        return Saved(True, "Nothing to save: the note is unchanged.", current)
    storage.set_study_user_attr(study_id, note_key(trial), text)
    return Saved(True, f"Saved {what} in the storage.", text)
