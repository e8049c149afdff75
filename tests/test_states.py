import itertools

import pytest

from farm.domain.states import (
    JOB_TERMINAL,
    JOB_TRANSITIONS,
    TASK_TRANSITIONS,
    JobStatus,
    TaskStatus,
    check_job,
    check_task,
)
from farm.errors import Conflict, InvalidTransition
from farm.lifecycle.actions import RULES, Action, available, check

JOB_ALLOWED = [(old, new) for old, targets in JOB_TRANSITIONS.items() for new in sorted(targets)]
TASK_ALLOWED = [(old, new) for old, targets in TASK_TRANSITIONS.items() for new in sorted(targets)]


def test_every_status_has_a_row():
    assert set(JOB_TRANSITIONS) == set(JobStatus)
    assert set(TASK_TRANSITIONS) == set(TaskStatus)


@pytest.mark.parametrize(("old", "new"), JOB_ALLOWED)
def test_allowed_job_transitions(old, new):
    check_job("job-x", old, new)


@pytest.mark.parametrize(("old", "new"), TASK_ALLOWED)
def test_allowed_task_transitions(old, new):
    check_task("task-x", old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (JobStatus.COMPLETED, JobStatus.ACTIVE),
        (JobStatus.CANCELED, JobStatus.ACTIVE),
        (JobStatus.CANCEL_REQUESTED, JobStatus.ACTIVE),
        (JobStatus.QUEUED, JobStatus.COMPLETED),
        (JobStatus.FAILED, JobStatus.COMPLETED),
        (JobStatus.PAUSED, JobStatus.ACTIVE),
    ],
)
def test_refused_job_transitions(old, new):
    with pytest.raises(InvalidTransition) as err:
        check_job("job-x", old, new)
    assert err.value.old == old.value and err.value.new == new.value
    assert "job-x" in err.value.message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (TaskStatus.COMPLETED, TaskStatus.RUNNING),
        (TaskStatus.QUEUED, TaskStatus.COMPLETED),
        (TaskStatus.QUEUED, TaskStatus.RUNNING),
        (TaskStatus.CANCELED, TaskStatus.RUNNING),
        (TaskStatus.FAILED, TaskStatus.COMPLETED),
        (TaskStatus.PAUSED, TaskStatus.DISPATCHED),
    ],
)
def test_refused_task_transitions(old, new):
    with pytest.raises(InvalidTransition):
        check_task("task-x", old, new)


def test_terminal_jobs_only_leave_by_requeue():
    for status in JOB_TERMINAL:
        assert JOB_TRANSITIONS[status] == frozenset({JobStatus.REQUEUEING})


def test_table_is_closed_under_statuses():
    for old, new in itertools.chain(JOB_ALLOWED, TASK_ALLOWED):
        assert old != new


# ---- every refused transition, from the tables themselves ---------------------------------------------------
JOB_REFUSED = [
    (old, new) for old, new in itertools.product(JobStatus, JobStatus) if old != new and new not in JOB_TRANSITIONS[old]
]
TASK_REFUSED = [
    (old, new)
    for old, new in itertools.product(TaskStatus, TaskStatus)
    if old != new and new not in TASK_TRANSITIONS[old]
]


@pytest.mark.parametrize(("old", "new"), JOB_REFUSED)
def test_every_job_transition_outside_the_table_is_refused(old, new):
    with pytest.raises(InvalidTransition):
        check_job("job-x", old, new)


@pytest.mark.parametrize(("old", "new"), TASK_REFUSED)
def test_every_task_transition_outside_the_table_is_refused(old, new):
    with pytest.raises(InvalidTransition):
        check_task("task-x", old, new)


def test_the_refused_tables_are_not_empty_and_terminal_jobs_only_requeue():
    assert len(JOB_REFUSED) == 46 and len(TASK_REFUSED) == 30  # a changed table shows up here in review
    for terminal in JOB_TERMINAL:
        assert JOB_TRANSITIONS[terminal] == {JobStatus.REQUEUEING}


# ---- the actions table: what a user may do in which state ---------------------------------------------------
@pytest.mark.parametrize(("action", "status"), list(itertools.product(Action, JobStatus)))
def test_each_action_acts_is_a_no_op_or_is_refused_as_the_table_says(action, status):
    rule = RULES[action]
    assert rule.acts_in <= rule.accepted_in
    if status in rule.acts_in:
        assert check(action, "job-x", status) is True
        assert (action in available(status)) is (action is not Action.UNBLOCK)
    elif status in rule.accepted_in:
        assert check(action, "job-x", status) is False
        assert action not in available(status)
    else:
        with pytest.raises(Conflict, match=f"job job-x is {status.value}: "):
            check(action, "job-x", status)


def test_no_action_changes_a_finished_job_but_retry_and_unblock():
    for status in (JobStatus.COMPLETED, JobStatus.CANCELED):
        assert set(available(status)) <= {Action.RETRY, Action.UNBLOCK}
    assert Action.CANCEL not in available(JobStatus.CANCEL_REQUESTED)
