"""Money as the farm shows it: every cost in the rate card's currency, with enough decimals not to read 0.00.

The rate card (``Company.rates``: price per resource-hour) is in one currency for the whole farm, the setting
``FARM_CURRENCY`` (an ISO 4217 code, ``EUR`` unless set). Costs are computed from the metering ledger.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from farm.db.models import Company, Job, UsageEntry

#: The currency of rate cards when ``FARM_CURRENCY`` is not set.
DEFAULT_CURRENCY = "EUR"
#: Most decimals a cost is shown with; smaller costs than 10^-MAX_DIGITS read as 0.000000.
MAX_DIGITS = 6


def cost_digits(cost: float) -> int:
    """Decimals to show ``cost`` with: two, or enough for two significant digits of a small cost (at most
    ``MAX_DIGITS``), so a cost that is not zero never reads 0.00."""
    digits = 2
    # A hair under the bound: 0.02 x 18 s / 3600 s computes as 0.0000999…, which is 0.00010, not 0.000100.
    while 0 < abs(cost) < 10 ** (1 - digits) * (1 - 1e-9) and digits < MAX_DIGITS:
        digits += 1
    return digits


def format_cost(cost: float, currency: str, number: Callable[[float, int], str] | None = None) -> str:
    """``0.0042 EUR``: the cost with ``cost_digits`` decimals (``number(value, digits)`` formats it in a viewer's
    locale; plain ``.``-decimals without one) and the currency code."""
    digits = cost_digits(cost)
    text = number(cost, digits) if number is not None else f"{cost:.{digits}f}"
    return f"{text} {currency}"


def job_cost(session: Session, job: Job) -> float | None:
    """What the job's metered attempts cost its company at the company's rate card; None without a rate card."""
    company = session.get(Company, job.company_id)
    rates = company.rates if company is not None else None
    if not rates:
        return None
    total = 0.0
    for resource, seconds in session.execute(
        select(UsageEntry.resource, func.sum(UsageEntry.seconds * UsageEntry.count))
        .where(UsageEntry.job_id == job.id)
        .group_by(UsageEntry.resource)
    ):
        total += float(rates.get(str(resource), 0.0)) * float(seconds or 0.0) / 3600.0
    return total
