"""The actions table: what a user may do to a job in which state. The API refuses by it, the CLI shows it
(``farm status``), the monitor draws its buttons from it; ``farm.lifecycle.control`` carries the actions out.

``acts_in``: states where the action changes something. ``accepted_in``: those plus states where it is a harmless
no-op (pausing a paused job). Anything else is refused with a ``Conflict`` that says which states would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from farm.domain.states import JOB_TERMINAL, JobStatus
from farm.errors import Conflict

J = JobStatus


class Action(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    RETRY = "retry"
    UNBLOCK = "unblock"


@dataclass(frozen=True)
class Rule:
    """When an action may be taken, and how its refusal reads."""

    action: Action
    acts_in: frozenset[JobStatus]
    accepted_in: frozenset[JobStatus]
    refusal: str  # completes "job X is <status>: ..."


_LIVE = frozenset(set(J) - JOB_TERMINAL)

RULES: dict[Action, Rule] = {
    Action.CANCEL: Rule(
        Action.CANCEL,
        acts_in=_LIVE - {J.CANCEL_REQUESTED},
        accepted_in=_LIVE | {J.CANCELED},
        refusal="there is nothing to cancel",
    ),
    Action.PAUSE: Rule(
        Action.PAUSE,
        acts_in=frozenset({J.QUEUED, J.ACTIVE}),
        accepted_in=frozenset({J.QUEUED, J.ACTIVE, J.PAUSE_REQUESTED, J.PAUSED}),
        refusal="only queued or active jobs can be paused",
    ),
    Action.RESUME: Rule(
        Action.RESUME,
        acts_in=frozenset({J.PAUSED, J.PAUSE_REQUESTED}),
        accepted_in=frozenset({J.PAUSED, J.PAUSE_REQUESTED, J.QUEUED, J.ACTIVE}),
        refusal="only paused jobs can be resumed",
    ),
    Action.RETRY: Rule(
        Action.RETRY,
        acts_in=frozenset({J.FAILED, J.CANCELED, J.ACTIVE, J.PAUSED}),
        accepted_in=frozenset(set(J) - {J.CANCEL_REQUESTED, J.REQUEUEING}),
        refusal="retry it once it is canceled",
    ),
    Action.UNBLOCK: Rule(
        Action.UNBLOCK,
        acts_in=frozenset(set(J) - {J.CANCELED, J.COMPLETED, J.CANCEL_REQUESTED}),
        accepted_in=frozenset(J),
        refusal="",
    ),
}


def check(action: Action, job_id: str, status: JobStatus) -> bool:
    """True when the action changes something, False for a no-op; ``Conflict`` when it is refused."""
    rule = RULES[action]
    if status in rule.acts_in:
        return True
    if status in rule.accepted_in:
        return False
    raise Conflict(f"job {job_id} is {status.value}: {rule.refusal}")


def available(status: JobStatus) -> list[Action]:
    """The actions that would change something for a job in ``status`` (buttons, `farm status`). Unblock names a
    node, so it is offered where the job's blocklist is shown, not here."""
    return [action for action, rule in RULES.items() if status in rule.acts_in and action is not Action.UNBLOCK]
