"""Bounded disk use for trial weights: keep what a user may export, delete the rest.

A search keeps the best weights of every COMPLETE trial so that any of them can be exported. With
thousands of trials that is unbounded; ``prune_weights`` keeps the Pareto set plus the ``keep_top``
best trials by Dice, deletes the other files and lists the pruned trials in the study (Optuna does
not let finished trials change, so the list is a study attribute), so exports can say why.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna

from studies._records import complete_records, pareto_records, trial_records

logger = logging.getLogger(__name__)

#: Study attribute listing the trial numbers whose weights a keep policy deleted.
ATTR_PRUNED_WEIGHTS = "pruned_weights"


def pruned_weights(study: optuna.Study) -> set[int]:
    return {int(n) for n in study.user_attrs.get(ATTR_PRUNED_WEIGHTS, [])}


def prune_weights(study: optuna.Study, *, keep_top: int) -> list[int]:
    """Delete the weights of COMPLETE trials outside the Pareto set and the ``keep_top`` best by Dice.

    Returns the trial numbers pruned by this call. Files that are already gone are only recorded.
    """
    records = trial_records(study)
    done = complete_records(records)
    keep = {r.number for r in pareto_records(records)}
    keep |= {r.number for r in sorted(done, key=lambda r: -(r.dice or 0.0))[:keep_top]}
    already = pruned_weights(study)
    pruned = []
    for record in done:
        if record.number in keep or record.number in already or not record.weights_path:
            continue
        path = Path(record.weights_path)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # keep going: the record says what happened
            logger.warning("could not delete the weights of trial %d (%s): %s", record.number, path, exc)
            continue
        pruned.append(record.number)
    if pruned:
        study.set_user_attr(ATTR_PRUNED_WEIGHTS, sorted(already | set(pruned)))
    return pruned
