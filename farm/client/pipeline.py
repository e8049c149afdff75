"""Client SDK for the studio pipeline (issue 19): resubmit, presets, webhooks and their delivery log; shared
presets (issue 20 item 4)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from farm.client.api import FarmClient
from farm.contract import (
    EstimateOut,
    JobOut,
    PresetList,
    PresetOut,
    PresetPublish,
    PresetSave,
    ResubmitRequest,
    SharedPresetList,
    SharedPresetOut,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookList,
    WebhookOut,
)


class PipelineClient(FarmClient):
    """``FarmClient`` plus the pipeline calls."""

    def __enter__(self) -> PipelineClient:
        return self

    def resubmit(self, job_id: str, change: ResubmitRequest) -> JobOut:
        body = change.model_dump(mode="json", exclude_none=True)
        return JobOut.model_validate(self._request("POST", f"/api/v1/jobs/{job_id}/resubmit", json=body).json())

    def presets(self) -> list[PresetOut]:
        return PresetList.model_validate(self._request("GET", "/api/v1/presets").json()).presets

    def preset(self, name: str) -> PresetOut:
        return PresetOut.model_validate(self._request("GET", f"/api/v1/presets/{name}").json())

    def save_preset(self, name: str, body: PresetSave) -> PresetOut:
        data = body.model_dump(mode="json", exclude_none=True)
        return PresetOut.model_validate(self._request("PUT", f"/api/v1/presets/{name}", json=data).json())

    def delete_preset(self, name: str) -> None:
        self._request("DELETE", f"/api/v1/presets/{name}")

    # ---- issue 20 item 4: shared presets ----
    def shared_presets(self) -> list[SharedPresetOut]:
        """Shared presets the company may use, its own published ones included (``mine``)."""
        return SharedPresetList.model_validate(self._request("GET", "/api/v1/shared-presets").json()).presets

    def shared_preset(self, ref: str) -> SharedPresetOut:
        """A shared preset by ``NAME@PUBLISHER``."""
        name, _, publisher = ref.partition("@")
        return SharedPresetOut.model_validate(self._request("GET", f"/api/v1/shared-presets/{publisher}/{name}").json())

    def publish_preset(self, name: str, body: PresetPublish) -> SharedPresetOut:
        answer = self._request("POST", f"/api/v1/presets/{name}/publish", json=body.model_dump(mode="json"))
        return SharedPresetOut.model_validate(answer.json())

    def unpublish_preset(self, name: str, company: str | None = None) -> None:
        self._request("DELETE", f"/api/v1/presets/{name}/publish", params=self._company(company))

    @staticmethod
    def _company(company: str | None) -> dict[str, Any]:
        return {"company": company} if company else {}

    def webhooks(self, company: str | None = None) -> list[WebhookOut]:
        answer = self._request("GET", "/api/v1/admin/webhooks", params=self._company(company))
        return WebhookList.model_validate(answer.json()).webhooks

    def add_webhook(self, spec: WebhookCreate, company: str | None = None) -> WebhookCreated:
        body = spec.model_dump(mode="json")
        answer = self._request("POST", "/api/v1/admin/webhooks", json=body, params=self._company(company))
        return WebhookCreated.model_validate(answer.json())

    def remove_webhook(self, webhook_id: str, company: str | None = None) -> None:
        self._request("DELETE", f"/api/v1/admin/webhooks/{webhook_id}", params=self._company(company))

    def test_webhook(self, webhook_id: str, company: str | None = None) -> WebhookDeliveryOut:
        path = f"/api/v1/admin/webhooks/{webhook_id}/test"
        return WebhookDeliveryOut.model_validate(self._request("POST", path, params=self._company(company)).json())

    def webhook_log(
        self, company: str | None = None, webhook_id: str | None = None, limit: int = 100
    ) -> list[WebhookDeliveryOut]:
        params: dict[str, Any] = {**self._company(company), "limit": limit}
        if webhook_id:
            params["webhook"] = webhook_id
        answer = self._request("GET", "/api/v1/admin/webhooks/deliveries", params=params)
        return WebhookDeliveryList.model_validate(answer.json()).deliveries

    def estimate(self, job_id: str) -> EstimateOut:
        return EstimateOut.model_validate(self._request("GET", f"/api/v1/jobs/{job_id}/estimate").json())

    def run_estimate(
        self,
        blend: Path,
        frames: str | None,
        name: str | None = None,
        timeout_s: float = 3600.0,
        on_submitted: Callable[[str], None] | None = None,
        **options: Any,
    ) -> EstimateOut:
        """Render a few sample frames of the job ``blend`` + ``frames`` + ``options`` would be (a job of its own,
        metered like any), wait for them, and return the estimate."""
        from farm.client.scene_info import read_scene
        from farm.domain.frames import format_frames, parse_frames
        from farm.domain.order import sample_frames
        from farm.domain.states import JOB_TERMINAL

        spec = frames or read_scene(Path(blend)).frames
        samples = format_frames(sample_frames(parse_frames(spec)))
        job = self.submit(
            blend,
            samples,
            name=f"estimate {name or Path(blend).stem}"[:200],
            chunk_size=1,
            priority=90,
            preview=False,
            estimate_for=spec,
            **options,
        ).job
        if on_submitted is not None:
            on_submitted(job.id)
        deadline = time.monotonic() + timeout_s
        while job.status not in JOB_TERMINAL and time.monotonic() < deadline:
            time.sleep(0.5)
            job = self.job(job.id)
        return self.estimate(job.id)
