"""What both scheduler wirings (the embedded farm and ``farm scheduler``) give the dispatcher besides dispatching:
the render slots' worker configuration, the media products made after a job's last frame, the periodic samplers
and senders, and the store grants of each assignment. Written once so the two modes cannot drift apart."""

from __future__ import annotations

import threading
from collections.abc import Callable

from farm import media
from farm.clock import Clock
from farm.db.engine import Database
from farm.media.preview import PreviewMaker
from farm.media.video import VideoMaker
from farm.metering.operator_report import CapacitySampler
from farm.metering.storage_usage import StorageSampler
from farm.services.webhooks import WebhookSender
from farm.settings import ServerSettings
from scheduler.dispatcher import Dispatcher
from scheduler.pool import ConfigFactory
from scheduler.store_errors import StoreErrors
from storage.base import ObjectStore
from storage.factory import StoreConfig, worker_store_config
from storage.grants import issuer_for
from workers.actor import WorkerConfig


def worker_configs(settings: ServerSettings, store: StoreConfig) -> ConfigFactory:
    """How a render slot's worker is configured; an S3 store's keys stay in this process (issue 15): workers get
    per-assignment grants instead."""

    def make_config(name: str, resources: dict[str, float]) -> WorkerConfig:
        return WorkerConfig(
            name=name,
            store=worker_store_config(store),
            cache_dir=str(settings.cache_dir),
            cache_bytes=settings.worker_cache_bytes,
            work_dir=str(settings.data_dir / "work"),
            resources=resources,
            renderer=settings.renderer,
        )

    return make_config


def attach(
    dispatcher: Dispatcher,
    db: Database,
    clock: Clock,
    settings: ServerSettings,
    store: ObjectStore,
    backend: ObjectStore,
    store_cfg: StoreConfig,
    store_errors: StoreErrors,
    meter: Callable[[], None],
    stop: threading.Event | None = None,
) -> None:
    """Hang the side work on the dispatcher: the preview movie and the video product after a job's last frame
    (issues 3 and 13), storage and capacity sampling into the ledger (issue 20), the loop meter behind
    ``farm_scheduler_*`` (issue 14), failed store calls counted (issue 15), webhooks sent from the outbox (issue
    19) and each assignment's scoped store access (issue 15; none with the local store). ``store``: what the
    scheduler itself uses (its failures counted); ``backend``: the store under it, which signs the grants."""
    video = VideoMaker(db, store_cfg, clock, store_errors=store_errors.media)
    dispatcher.on_job_completed = media.each(PreviewMaker(db, store_cfg, store_errors=store_errors.media), video)
    dispatcher.store_errors = store_errors.worker
    dispatcher.periodic.extend(
        [
            video.collect,
            StorageSampler(db, store, clock, settings.storage_sample_interval_s),
            CapacitySampler(db, clock),
            meter,
            store_errors,
            WebhookSender(db, clock, stop=stop),
        ]
    )
    dispatcher.grants = issuer_for(backend, settings.store_grant_base_s, settings.store_grant_per_frame_s)
