"""The usage ledger, quotas and budgets, usage reports and storage sampling."""
