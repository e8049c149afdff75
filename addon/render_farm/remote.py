"""The add-on's other farm calls without bpy: presets (own and shared), the cost estimate, the asset library.

Each runs in a :class:`Call` (a background thread) so Blender's UI never waits on the network; the operators poll
``done`` from a timer (or wait, when called from a script) and then apply ``result`` in Blender's main thread.
Failures become the same :class:`core.Outcome` messages as a submission's.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import core

# ---- messages (each has a zh_HANS entry in translations.py) ---------------------------------------------------
MSG_ESTIMATING = "Rendering sample frames on the farm to estimate the cost..."
MSG_ESTIMATE = "Estimate: {cost} ({low} to {high}) for {frames} frame(s): {hours} {resource}-hours at {rate}/hour"
MSG_ESTIMATE_FAILED = "No estimate: the sample job {job_id} ended {status}."
MSG_PRESETS = "{count} preset(s): yours and the shared ones."
MSG_ASSETS = "{count} library asset(s) you may use."
MSG_LINKED = "Linked {count} {what} from {name}: {names}"
MSG_APPENDED = "Appended {count} {what} from {name}: {names}"
MSG_IMAGE_LOADED = "Loaded {name} as image {image}."
MSG_WORLD_SET = "Loaded {name} and set it as the world's environment."
MSG_NOT_IN_FILE = "{name} holds no {what} called {wanted}; it holds: {available}"
MSG_NOTHING_IN_FILE = "{name} holds no {what}."
MSG_UNSUPPORTED = "{name} ({filename}) is neither a .blend file nor an image: pull it with farm library pull."
MSG_CALL_REFUSED = "The farm refused the request: {detail}"

MESSAGES = (
    MSG_ESTIMATING,
    MSG_ESTIMATE,
    MSG_ESTIMATE_FAILED,
    MSG_PRESETS,
    MSG_ASSETS,
    MSG_LINKED,
    MSG_APPENDED,
    MSG_IMAGE_LOADED,
    MSG_WORLD_SET,
    MSG_NOT_IN_FILE,
    MSG_NOTHING_IN_FILE,
    MSG_UNSUPPORTED,
    MSG_CALL_REFUSED,
)

#: Files Blender loads as images (an HDRI may become the world's environment).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".hdr", ".tif", ".tiff", ".tga", ".bmp", ".webp")


class Call:
    """One farm call in a background thread. ``result`` holds what ``work`` returned, ``outcome`` a failure."""

    def __init__(self, work: Callable[[], Any], url: str, name: str = "render-farm-call") -> None:
        self.url = url
        self.result: Any = None
        self.outcome: core.Outcome | None = None
        self._work = work
        self._done = threading.Event()
        self._thread = threading.Thread(None, self.run, name, daemon=True)

    def start(self) -> Call:
        """Run in the background; returns at once."""
        self._thread.start()
        return self

    def run(self) -> None:
        """The thread's body; also callable directly to run synchronously."""
        try:
            self.result = self._work()
        except Exception as exc:
            outcome = core.classify(exc, self.url)
            if outcome.template == core.MSG_REFUSED:  # not a job here: a preset, an estimate or a library call
                outcome.template = MSG_CALL_REFUSED
            self.outcome = outcome
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the call ends (or ``timeout`` passes); True when it ended."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()


def _client(kind: str, url: str, token: str) -> Any:
    """A farm client (``pipeline`` or ``library``); an empty url or token falls back like the CLI's."""
    if kind == "library":
        from farm.client.library import LibraryClient

        return LibraryClient(url or None, token or None)
    from farm.client.pipeline import PipelineClient

    return PipelineClient(url or None, token or None)


# ---- presets -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PresetChoice:
    """One entry of the panel's preset menu: ``ref`` goes into the Preset field."""

    ref: str
    source: str  # "own", "platform" or the publishing company
    description: str


def _summary(settings: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.model_dump(mode="json", exclude_none=True).items())


def fetch_presets(url: str, token: str) -> list[PresetChoice]:
    """The company's presets, then the shared ones it may use (by ``NAME@PUBLISHER``), as the menu lists them."""
    with _client("pipeline", url, token) as client:
        own = client.presets()
        shared = client.shared_presets()
    choices = [PresetChoice(p.name, "own", _summary(p.settings)) for p in own]
    for q in shared:
        if not q.mine:
            source = "platform" if q.by_platform else q.publisher
            choices.append(PresetChoice(q.ref, source, f"{q.description} ({_summary(q.settings)})"))
    return choices


# ---- cost estimate -------------------------------------------------------------------------------------------
#: Options of a submission that say nothing about what a frame costs (the sample job sets its own chunking).
_NOT_FOR_ESTIMATE = ("after", "frame_match", "chunk_size", "priority", "order")


def estimate(request: core.SubmitRequest, on_submitted: Callable[[str], None] | None = None) -> Any:
    """Render the sample frames of the job ``request`` describes (a metered job of its own) and return the
    farm's ``EstimateOut`` once they are done; the same call as ``farm estimate``."""
    options = {k: v for k, v in request.options().items() if k not in _NOT_FOR_ESTIMATE}
    with _client("pipeline", request.url, request.token) as client:
        return client.run_estimate(
            request.blend, request.frames, name=request.name or None, on_submitted=on_submitted, **options
        )


def estimate_outcome(est: Any) -> core.Outcome:
    """The panel's line for an estimate: price with its error band, and the resource-hours behind it."""
    if not est.ready:
        return core.failure("estimate_failed", MSG_ESTIMATE_FAILED, job_id=est.job_id, status=est.status.value)
    args = {
        "cost": f"{est.cost:.2f}",
        "low": f"{est.cost_low:.2f}",
        "high": f"{est.cost_high:.2f}",
        "frames": est.frames_total,
        "hours": f"{est.resource_hours:.3f}",
        "resource": est.resource,
        "rate": f"{est.rate:.2f}",
    }
    return core.Outcome(kind="ok", template=MSG_ESTIMATE, args=args, job_id=est.job_id)


# ---- library -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AssetChoice:
    """One library asset as the browser lists it."""

    id: str
    name: str
    filename: str
    sha256: str
    publisher: str
    licence: str
    tags: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """``blend``, ``image`` or ``other``: what the add-on can do with it."""
        suffix = Path(self.filename).suffix.lower()
        return "blend" if suffix == ".blend" else "image" if suffix in IMAGE_SUFFIXES else "other"


def list_assets(url: str, token: str, tag: str | None = None) -> list[AssetChoice]:
    """The library assets the company may use."""
    with _client("library", url, token) as client:
        assets = client.library(tag=tag or None)
    return [AssetChoice(a.id, a.name, a.filename, a.sha256, a.publisher, a.licence, list(a.tags)) for a in assets]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def pull_asset(url: str, token: str, asset_id: str, cache: Path) -> tuple[AssetChoice, Path]:
    """The asset's file in the cache, ``cache/<sha256>/<file name>``, downloaded (and checked) unless there.

    The folder is named by content, so a linked library keeps a stable path and two assets never collide."""
    with _client("library", url, token) as client:
        a = client.library_asset(asset_id)
        asset = AssetChoice(a.id, a.name, a.filename, a.sha256, a.publisher, a.licence, list(a.tags))
        folder = cache / asset.sha256
        path = folder / Path(asset.filename).name
        if path.is_file() and _sha256(path) == asset.sha256:
            return asset, path
        return asset, client.pull(asset_id, folder)
