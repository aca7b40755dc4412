"""Resuming a study: which driver owns a running trial, heartbeats, and reconciling orphans.

A trial is RUNNING in the study from the moment the driver asks for it until it tells the result.
If the driver dies (SIGKILL, a pre-empted node), those trials stay RUNNING for ever. The driver
records who it is on every trial it starts and refreshes a heartbeat on them; the next search on the
study marks the trials of a dead driver FAIL (``orphaned``) and enqueues their parameters again, so
the same architectures are retried first and the trial budget still counts what really ran.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from studies import ATTR_ERROR, ATTR_ORPHANED, ATTR_SEED, ATTR_STAGE, CONFIRM_STAGE

logger = logging.getLogger(__name__)

ATTR_DRIVER = "driver"  # {"host", "pid", "started"} of the process that runs the trial
ATTR_HEARTBEAT = "heartbeat"  # time.time() of the driver's last sign of life for this trial
ATTR_RETRY_OF = "retry_of"  # number of the orphaned trial this one retries
#: FAIL because the search was interrupted (SIGINT) while the trial ran; like an orphan it is not
#: charged to the budget (``orphaned`` is set too) and its architecture was enqueued again.
ATTR_INTERRUPTED = "interrupted"


def carried(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """What a retry of a trial keeps of it: a confirm-stage trial stays one, with its seed."""
    if attrs.get(ATTR_STAGE) == CONFIRM_STAGE:
        return {ATTR_STAGE: CONFIRM_STAGE, ATTR_SEED: attrs.get(ATTR_SEED)}
    return {}


#: A reference trial (a baseline, a grid point) that failed is enqueued again on resume this many times at most.
MAX_STARTING_POINT_ATTEMPTS = 3
#: A trial whose driver runs elsewhere is orphaned once its heartbeat is this old.
STALE_AFTER_S = 600.0
HEARTBEAT_EVERY_S = 60.0
#: A RUNNING trial that names no driver this long after it started was orphaned between ask and record.
ASK_GRACE_S = 5.0


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def this_driver() -> dict[str, Any]:
    """Who runs trials from this process: host, pid, and the process's start time (pids are reused)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _process_start(os.getpid())}


def driver_alive(attrs: Mapping[str, Any], *, now: float | None = None) -> bool:
    """Whether the driver recorded on a RUNNING trial may still be running it."""
    now = time.time() if now is None else now
    driver = attrs.get(ATTR_DRIVER)
    if isinstance(driver, Mapping) and driver.get("host") == socket.gethostname():
        started = _process_start(int(driver.get("pid", -1)))
        recorded = driver.get("started")
        return started is not None and (recorded is None or abs(started - float(recorded)) < 1.0)
    heartbeat = attrs.get(ATTR_HEARTBEAT)
    return heartbeat is not None and now - float(heartbeat) < STALE_AFTER_S


@dataclass(frozen=True)
class Reconciled:
    orphans: tuple[int, ...]  # trial numbers marked FAIL as orphaned
    retries: int  # how many were enqueued again


def reconcile_orphans(study: optuna.Study) -> Reconciled:
    """Mark every RUNNING trial whose driver is gone FAIL (orphaned) and enqueue its parameters.

    A RUNNING trial without a driver record (its driver died between asking and naming itself, or it
    was asked by hand) counts as alive only for ``ASK_GRACE_S`` after it started.
    """
    storage = study._storage
    orphans = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = dict(trial.user_attrs)
        if ATTR_DRIVER not in attrs and ATTR_HEARTBEAT not in attrs:
            # A driver names itself in the commit right after asking: a trial that has gone longer
            # without it was asked by a driver that died in between (or by hand).
            started = trial.datetime_start.timestamp() if trial.datetime_start is not None else 0.0
            if time.time() - started < ASK_GRACE_S:
                continue
        elif driver_alive(attrs):
            continue
        driver = attrs.get(ATTR_DRIVER) or {}
        storage.set_trial_user_attr(trial._trial_id, ATTR_ORPHANED, True)
        storage.set_trial_user_attr(
            trial._trial_id,
            ATTR_ERROR,
            f"orphaned: the driver (host {driver.get('host', '?')}, pid {driver.get('pid', '?')}) stopped "
            "while this trial ran; its architecture was enqueued again",
        )
        if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            continue  # finished meanwhile by another process
        orphans.append(trial.number)
        if trial.params:
            study.enqueue_trial(
                dict(trial.params),
                user_attrs={ATTR_RETRY_OF: trial.number, **carried(trial.user_attrs)},
                skip_if_exists=False,
            )
    if orphans:
        logger.warning("study %s: marked orphaned trials %s FAIL and enqueued them again", study.study_name, orphans)
    return Reconciled(tuple(orphans), len(orphans))


class Heartbeat:
    """A daemon thread that refreshes ``ATTR_HEARTBEAT`` on this driver's RUNNING trials."""

    def __init__(self, study: optuna.Study, *, every_s: float = HEARTBEAT_EVERY_S) -> None:
        self._study = study
        self._every = every_s
        self._me = this_driver()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nas-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def beat(self) -> int:
        """Refresh the heartbeat of this driver's running trials now; returns how many."""
        now = time.time()
        count = 0
        for trial in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            driver = trial.user_attrs.get(ATTR_DRIVER) or {}
            if driver.get("host") == self._me["host"] and driver.get("pid") == self._me["pid"]:
                self._study._storage.set_trial_user_attr(trial._trial_id, ATTR_HEARTBEAT, now)
                count += 1
        return count

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.beat()
            except Exception as exc:  # a database hiccup must not kill the search
                logger.warning("heartbeat failed: %s", exc)


def _fixed(trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    fixed = trial.system_attrs.get("fixed_params")
    return dict(fixed) if isinstance(fixed, Mapping) else None


def requeue_failed_starting_points(study: optuna.Study, points: list[dict[str, Any]]) -> list[int]:
    """Enqueue again the reference points (baselines, grid points) whose every attempt FAILed (a worker
    that died, a node lost), so that a resumed study does not lose its no-attention baseline for good;
    returns the numbers of the failed trials retried. A point is left alone once it has
    ``MAX_STARTING_POINT_ATTEMPTS`` charged failures (it fails for a reason a retry does not fix)."""
    trials = study.get_trials(deepcopy=False)
    retried = []
    for params in points:
        mine = [t for t in trials if _fixed(t) == params]
        numbers = {t.number for t in mine}
        while True:  # and the retries of those (an orphan's retry fixes all of its parameters)
            more = [t for t in trials if t.number not in numbers and t.user_attrs.get(ATTR_RETRY_OF) in numbers]
            if not more:
                break
            mine += more
            numbers |= {t.number for t in more}
        if not mine or any(t.state != TrialState.FAIL for t in mine):
            continue  # never enqueued (a smaller budget then), or done, running or waiting
        charged = [t for t in mine if not t.user_attrs.get(ATTR_ORPHANED)]
        if len(charged) >= MAX_STARTING_POINT_ATTEMPTS:
            continue
        last = max(mine, key=lambda t: t.number)
        study.enqueue_trial(dict(params), user_attrs={ATTR_RETRY_OF: last.number}, skip_if_exists=False)
        retried.append(last.number)
    if retried:
        logger.warning("study %s: reference trials %s had failed and are enqueued again", study.study_name, retried)
    return retried


def orphaned_running(study: optuna.Study, *, now: float | None = None) -> list[optuna.trial.FrozenTrial]:
    """The RUNNING trials whose driver is gone (what ``reconcile_orphans`` would mark FAIL), read-only."""
    now = time.time() if now is None else now
    dead = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = dict(trial.user_attrs)
        if ATTR_DRIVER not in attrs and ATTR_HEARTBEAT not in attrs:
            started = trial.datetime_start.timestamp() if trial.datetime_start is not None else 0.0
            if now - started >= ASK_GRACE_S:
                dead.append(trial)
        elif not driver_alive(attrs, now=now):
            dead.append(trial)
    return dead
