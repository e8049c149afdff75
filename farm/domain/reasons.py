"""The catalogue of reasons the farm writes (a job's status reason, an attempt's failure), as codes with parameters.

A ``Reason`` is the English sentence (it *is* a ``str``, so code that compares, logs or stores reason text keeps
working) that also carries its code and parameters. The database keeps both (``Job.status_reason`` with
``status_reason_code``/``status_reason_params``, ``TaskAttempt.reason`` with ``reason_code``/``reason_params``),
the API keeps its English fields, and the monitor renders the code in the viewer's language from
``web/templates/messages.toml`` (key ``reason.<code>``). The English text is made from the template here, so the
two cannot drift; a test checks that the message catalogue agrees with it.

Parameters are strings or numbers, a nested reason (stored as ``{"code": …, "params": …}``), or text that is not
ours (Blender's words, Ray's, a store's error): that is shown as it is, in every language.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Entry:
    """One code: how serious it is (the monitor's colour) and its English template (``{name}`` placeholders)."""

    severity: Severity
    en: str


CATALOGUE: dict[str, Entry] = {
    # Two reasons in one line (a failure and the nodes it blocklisted).
    "pair": Entry("error", "{first}; {second}"),
    # ---- a job's status reason -------------------------------------------------------------------------------
    "canceled": Entry("info", "canceled by request"),
    "pause_stopping": Entry("info", "pause requested: stopping running chunks"),
    "pause_finishing": Entry("info", "pause requested: running chunks finish"),
    "paused": Entry("info", "paused by request"),
    "chunks_failed": Entry("error", "{failed} of {total} chunk(s) failed"),
    "summary_chunk": Entry("error", "{failed} of {total} chunk(s) failed; chunk {chunk} (frames {frames})"),
    "summary_attempt": Entry(
        "error",
        "{failed} of {total} chunk(s) failed; chunk {chunk} (frames {frames}) after {attempts} attempt(s), "
        "last on {node}: {reason}",
    ),
    "blocklisted": Entry("error", "blocklisted: {nodes}"),
    "chunk_failed": Entry("error", "chunk {chunk} (frames {frames}) failed {failures} time(s): {reason}"),
    "waiting": Entry("warning", "waiting: {reason}"),
    "store_wait": Entry("warning", "waiting for the object store ({detail}); next try in {wait}s"),
    "no_slot": Entry("warning", "waiting: no render slot is up (no worker node has joined, or all are starting)"),
    "no_gpu_slot": Entry("warning", "waiting: no GPU slot is up and this job does not allow CPU fallback"),
    "no_cpu_slot": Entry("warning", "waiting: no CPU slot is up"),
    "no_node_left": Entry(
        "error",
        "no node may render this job any more: every node that could render it is blocklisted for it ({nodes}); "
        "`farm unblock {job}` (or Unblock in the monitor) runs it again",
    ),
    "quota": Entry(
        "warning",
        "quota exceeded: {company} used {used} of its {budget} {resource}-hour budget for {month}; the job waits "
        "and runs once the budget is raised (farm admin company update {company} --{flag}-hours-budget HOURS) or "
        "next month",
    ),
    "held_failed": Entry(
        "warning", "held: job {job} failed; retry it (farm retry {id}) to release this job, or cancel this one"
    ),
    "held_canceled": Entry(
        "warning", "held: job {job} canceled; retry it (farm retry {id}) to release this job, or cancel this one"
    ),
    "waiting_job": Entry("info", "waiting for job {jobs}"),
    "waiting_frames": Entry("info", "waiting for frames of job {jobs}"),
    "unblocked_running": Entry("info", "unblocked {nodes}; running again"),
    "unblocked": Entry("info", "unblocked {nodes}"),
    # ---- an attempt's reason ---------------------------------------------------------------------------------
    "scheduler_restarted": Entry("info", "the scheduler restarted while this attempt ran"),
    "frames_missing": Entry("error", "the attempt ended without storing frame(s) {frames}"),
    "stopped": Entry("info", "stopped on request (cancel, pause --now, or the job ended)"),
    "bundle_stopped": Entry("info", "not begun: a chunk before it in the same call failed on this worker; requeued"),
    "node_left": Entry("warning", "worker lost: node {node} left the cluster ({why})"),
    "worker_died": Entry("error", "the worker process died while rendering this chunk ({why})"),
    "worker_lost": Entry("warning", "worker lost: {why}"),
    "lost_in_a_row": Entry(
        "error", "the chunk lost its worker {times} times in a row; this loss counts as a failed attempt ({reason})"
    ),
    "frame_error": Entry("error", "frame {frame}: {message}"),
    "scene_error": Entry("error", "scene or job error (not retried): {reason}"),
    "attempts_failed": Entry("error", "{failures} attempt(s) failed: {reason}"),
    "lease_expired": Entry(
        "error", "lease expired: no frame or progress for {timeout}s (FARM_TASK_TIMEOUT_S); the attempt was killed"
    ),
    # ---- issue 16: actions on one chunk (farm.lifecycle.control) ---------------------------------------------
    "chunk_requeued": Entry("info", "chunk {chunk} requeued by request"),
    "chunk_canceled": Entry("info", "chunk {chunk} canceled by request"),
    "chunks_canceled": Entry(
        "info", "{canceled} of {total} chunk(s) canceled by request, the others completed; `farm retry` renders them"
    ),
    # ---- issue 16: reasons that were plain English (retry, the worker's own failures, the video product) ------
    "retrying": Entry("info", "retrying {chunks} chunk(s)"),
    "pause_withdrawn": Entry("info", "pause withdrawn"),
    "resumed": Entry("info", "resumed"),
    "requeued_by_scheduler": Entry("info", "stopped by the scheduler; requeued"),
    "input_missing": Entry(
        "error",
        "an input of the job is missing from the store ({detail}); submit the scene again, the client uploads what "
        "the farm lost",
    ),
    "storage": Entry("warning", "storage: {detail}"),
    "worker_error": Entry("error", "worker error: {detail}"),
    # ---- the renderer (workers.renderer): Blender's own words stay in the parameters --------------------------
    "blender_stopped": Entry("error", "Blender stopped: {detail}"),
    "blender_protocol": Entry("error", "worker and Blender disagreed ({detail}); Blender was restarted"),
    "blender_setup": Entry("error", "Blender could not set up {file} for rendering"),
    "inputs_missing": Entry(
        "error",
        "missing inputs: {files}; pack them with the scene, or submit with --allow-missing to render without them",
    ),
    "video_no_ffmpeg": Entry("error", "ffmpeg is not installed on the node that encodes videos"),
    "video_no_frames": Entry("error", "the job has no stored frames to encode"),
    "video_lost": Entry("error", "the encode task was lost: {detail}"),
}

#: Longest text parameter kept (the text columns keep 4,000 characters of the whole reason).
MAX_PARAM_CHARS = 4000

#: A parameter's stored form: text or a number, or a nested reason as ``{"code": …, "params": …}``.
Param = str | int | float | dict[str, Any]


def placeholders(template: str) -> set[str]:
    """The ``{name}`` placeholders of a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(code: str, params: Mapping[str, Any], template: Callable[[str], str]) -> str:
    """The reason ``code`` with ``params`` filled in, its template (and those of nested reasons) from
    ``template(code)``: English from the catalogue, or another language's from the monitor's messages."""
    values: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, dict) and isinstance(value.get("code"), str):
            values[name] = render(value["code"], value.get("params") or {}, template)
        else:
            values[name] = str(value)
    return template(code).format_map(_Missing(values))


def english(code: str) -> str:
    """The English template of ``code`` (``KeyError`` for a code not in the catalogue)."""
    return CATALOGUE[code].en


def severity(code: str) -> Severity:
    """The severity of ``code``; ``error`` for one this version does not know."""
    entry = CATALOGUE.get(code)
    return entry.severity if entry is not None else "error"


class Reason(str):
    """An English reason that knows its code and parameters; build one with ``make``."""

    code: str
    params: dict[str, Param]

    def __new__(cls, code: str, params: Mapping[str, object]) -> Reason:
        stored = {name: _param(value) for name, value in params.items()}
        self = super().__new__(cls, render(code, stored, english))
        self.code, self.params = code, stored
        return self

    def __reduce__(self) -> tuple[Callable[[str, str, dict[str, Param]], str], tuple[str, str, dict[str, Param]]]:
        # Facts travel between processes (Ray pickles them): rebuilt from the code where the receiving process
        # knows it, else its English text (a worker of a newer version than the scheduler, mid-upgrade).
        return _rebuilt, (str(self), self.code, self.params)

    def stored(self) -> dict[str, Any]:
        """The nested form a parameter or a JSON column holds."""
        return {"code": self.code, "params": self.params}


def _rebuilt(text: str, code: str, params: dict[str, Param]) -> str:
    """A reason unpickled: the ``Reason`` when this process's catalogue has its code, else the English text it
    was sent with (an unknown code must not fail the facts it travels in)."""
    if code not in CATALOGUE:
        return text
    return Reason(code, params)


def make(code: str, **params: object) -> Reason:
    """The reason ``code`` with ``params`` (``KeyError`` for an unknown code or ``ValueError`` for a missing
    parameter: a writer that does not match the catalogue fails its tests, not a page)."""
    entry = CATALOGUE[code]
    missing = placeholders(entry.en) - set(params)
    if missing:
        raise ValueError(f"reason {code!r} needs {', '.join(sorted(missing))}")
    return Reason(code, params)


def coded(text: str) -> tuple[str, dict[str, Any] | None]:
    """(code, params) to store beside ``text``: those of a ``Reason``; ("", None) for plain text, which is shown as
    it is (words that are not the farm's own, or a writer not converted yet)."""
    if isinstance(text, Reason):
        return text.code, text.params
    return "", None


#: How a worker reports an error Blender raised while rendering a frame (``workers.renderer``).
_FRAME_ERROR = re.compile(r"frame (-?\d+): (.+)", re.S)


def from_worker(text: str) -> str:
    """A worker's reason with the farm's own words coded: ``frame 12: <Blender's message>`` becomes
    ``frame_error``; anything else (Blender's or the node's words) stays plain text."""
    if isinstance(text, Reason):
        return text
    found = _FRAME_ERROR.fullmatch(text)
    return make("frame_error", frame=int(found[1]), message=found[2]) if found else text


def rewrite(text: str, change: Callable[[str], str]) -> str:
    """``text`` with ``change`` applied to its words: to every text parameter of a ``Reason`` (nested ones too),
    keeping its code, or to plain text as it is (a worker hides its own folders this way)."""
    if not isinstance(text, Reason):
        return change(text)
    return Reason(text.code, {name: _rewrite_param(value, change) for name, value in text.params.items()})


def _rewrite_param(value: Param, change: Callable[[str], str]) -> Param:
    if isinstance(value, dict):
        inner = {name: _rewrite_param(v, change) for name, v in (value.get("params") or {}).items()}
        return {"code": value["code"], "params": inner}
    return change(value) if isinstance(value, str) else value


def _param(value: object) -> Param:
    if isinstance(value, Reason):
        return value.stored()
    if isinstance(value, dict) and isinstance(value.get("code"), str):  # a nested reason read back
        return {"code": value["code"], "params": dict(value.get("params") or {})}
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return value
    # Text that is not ours (Blender's message, a store's error) is kept as the reason columns keep text: the
    # monitor renders from the parameters, so an unbounded message would reach the page and the JSON column whole.
    return str(value)[:MAX_PARAM_CHARS]


class _Missing(dict[str, str]):
    """A placeholder a translation names but the stored reason lacks reads as ``?`` instead of failing the page."""

    def __missing__(self, key: str) -> str:
        return "?"


def restore(text: str, code: str, params: Mapping[str, Any] | None) -> str:
    """A stored reason read back: the ``Reason`` when its code is known (to nest it in another), else its text."""
    if code in CATALOGUE:
        return Reason(code, params or {})
    return text
