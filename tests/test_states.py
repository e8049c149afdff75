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
from farm.errors import InvalidTransition

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
