"""Client SDK for the studio pipeline (issue 19): resubmit, presets, webhooks and their delivery log."""

from __future__ import annotations

from typing import Any

from farm.client.api import FarmClient
from farm.contract import (
    JobOut,
    PresetList,
    PresetOut,
    PresetSave,
    ResubmitRequest,
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
