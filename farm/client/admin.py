"""Client SDK for tenancy and upkeep: who am I, companies, tokens, usage reports, and the store check."""

from __future__ import annotations

from typing import Any

from farm.client.api import FarmClient
from farm.contract import (
    CompanyCreate,
    CompanyList,
    CompanyOut,
    CompanyUpdate,
    FsckReport,
    FsckRequest,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
    UsageReport,
    WhoAmI,
)

FSCK_TIMEOUT_S = 3600.0


class AdminClient(FarmClient):
    """``FarmClient`` plus the ``/api/v1/me``, ``/api/v1/admin`` and usage-report calls."""

    def __enter__(self) -> AdminClient:
        return self

    def me(self) -> WhoAmI:
        return WhoAmI.model_validate(self._request("GET", "/api/v1/me").json())

    def companies(self) -> list[CompanyOut]:
        return CompanyList.model_validate(self._request("GET", "/api/v1/admin/companies").json()).companies

    def company(self, name: str) -> CompanyOut:
        return CompanyOut.model_validate(self._request("GET", f"/api/v1/admin/companies/{name}").json())

    def create_company(self, spec: CompanyCreate) -> CompanyOut:
        body = spec.model_dump(mode="json", exclude_none=True)
        return CompanyOut.model_validate(self._request("POST", "/api/v1/admin/companies", json=body).json())

    def update_company(self, name: str, spec: CompanyUpdate) -> CompanyOut:
        body = spec.model_dump(mode="json", exclude_unset=True)
        return CompanyOut.model_validate(self._request("PATCH", f"/api/v1/admin/companies/{name}", json=body).json())

    def tokens(self, company: str | None = None) -> list[TokenOut]:
        params = {"company": company} if company else {}
        return TokenList.model_validate(self._request("GET", "/api/v1/admin/tokens", params=params).json()).tokens

    def create_token(self, spec: TokenCreate) -> TokenCreated:
        body = spec.model_dump(mode="json")
        return TokenCreated.model_validate(self._request("POST", "/api/v1/admin/tokens", json=body).json())

    def revoke_token(self, token_id: str) -> TokenOut:
        return TokenOut.model_validate(self._request("POST", f"/api/v1/admin/tokens/{token_id}/revoke").json())

    def usage_report(self, month: str | None = None, company: str | None = None, per_job: bool = False) -> UsageReport:
        params: dict[str, Any] = {"per_job": per_job}
        if month:
            params["month"] = month
        if company:
            params["company"] = company
        return UsageReport.model_validate(self._request("GET", "/api/v1/usage", params=params).json())

    def fsck(self, repair: bool = False, grace_minutes: float = 60.0) -> FsckReport:
        """Check the database against the object store (platform admins); ``repair`` fixes what is safe."""
        body = FsckRequest(repair=repair, grace_minutes=grace_minutes).model_dump(mode="json")
        # It lists the whole store: allow far longer than an ordinary call.
        response = self._request("POST", "/api/v1/admin/fsck", json=body, timeout=FSCK_TIMEOUT_S)
        return FsckReport.model_validate(response.json())
