"""``farm admin company …``, ``farm admin token …`` and ``farm login``."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from pydantic import ValidationError

from farm.cli import output as out
from farm.client import ClientError
from farm.client import config as clientconfig
from farm.client.admin import AdminClient
from farm.contract import CompanyCreate, CompanyOut, CompanyUpdate, Role, TokenCreate

admin_app = typer.Typer(help="Platform and company administration.", no_args_is_help=True)
company_app = typer.Typer(help="Companies: shares, slot guarantees and caps, budgets, rate card.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)
admin_app.add_typer(company_app, name="company")
admin_app.add_typer(token_app, name="token")
__import__("farm.cli.gc", fromlist=["register"]).register(admin_app)  # `farm admin gc` (assets, issue 3)
__import__("farm.cli.fsck", fromlist=["register"]).register(admin_app)  # `farm admin fsck` (issue 11)
__import__("farm.cli.recover", fromlist=["register"]).register(admin_app)  # `farm admin recover-token` (issue 17)

UNLIMITED = ("max-slots", "gpu-hours-budget", "cpu-hours-budget", "retention-days")

GpuShare = Annotated[float | None, typer.Option(help="fair-share weight on GPU slots (default 1)")]
CpuShare = Annotated[float | None, typer.Option(help="fair-share weight on CPU slots (default 1)")]
MinSlots = Annotated[int | None, typer.Option(help="slots guaranteed as soon as they free")]
MaxSlots = Annotated[int | None, typer.Option(help="burst cap: most slots at once")]
GpuBudget = Annotated[float | None, typer.Option(help="GPU-hours per month")]
CpuBudget = Annotated[float | None, typer.Option(help="CPU-hours per month")]
Rates = Annotated[list[str] | None, typer.Option("--rate", help="price per resource-hour, e.g. gpu=1.20 (repeat)")]
Retention = Annotated[
    float | None, typer.Option(help="days finished jobs and their outputs are kept (`farm admin gc` expires them)")
]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]


def _client() -> AdminClient:
    return AdminClient()


def _fail(exc: ClientError) -> typer.Exit:
    out.error(exc.detail)
    return typer.Exit(2 if exc.status == 0 else 1)


def _invalid(exc: ValidationError) -> typer.Exit:
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        out.error(f"{where}: {err['msg'].removeprefix('Value error, ')}" if where else err["msg"])
    return typer.Exit(2)


def _rates(values: list[str] | None) -> dict[str, float] | None:
    if not values:
        return None
    rates: dict[str, float] = {}
    for item in values:
        resource, sep, price = item.partition("=")
        try:
            rates[resource.strip()] = float(price)
        except ValueError:
            sep = ""
        if not sep:
            out.error(f"--rate {item!r} must look like RESOURCE=PRICE, e.g. gpu=1.20")
            raise typer.Exit(2)
    return rates


def _show(companies: list[CompanyOut], as_json: bool) -> None:
    if as_json:
        out.emit_json({"companies": [c.model_dump(mode="json") for c in companies]})
        return

    def limit(value: float | int | None) -> str:
        return "-" if value is None else f"{value:g}"

    out.table(
        [
            "name",
            "gpu share",
            "cpu share",
            "min slots",
            "max slots",
            "GPU-h budget",
            "CPU-h budget",
            "retention d",
            "rates",
        ],
        [
            [
                c.name,
                f"{c.gpu_share:g}",
                f"{c.cpu_share:g}",
                c.min_slots,
                limit(c.max_slots),
                limit(c.gpu_hours_budget),
                limit(c.cpu_hours_budget),
                limit(c.retention_days),
                ", ".join(f"{k}={v:g}" for k, v in sorted(c.rates.items())),
            ]
            for c in companies
        ],
    )


@company_app.command("create")
def company_create(
    name: Annotated[str, typer.Argument(help="company name: letters, digits, '.', '_', '-'")],
    gpu_share: GpuShare = None,
    cpu_share: CpuShare = None,
    min_slots: MinSlots = None,
    max_slots: MaxSlots = None,
    gpu_hours_budget: GpuBudget = None,
    cpu_hours_budget: CpuBudget = None,
    rate: Rates = None,
    retention_days: Retention = None,
    as_json: AsJson = False,
) -> None:
    """Create a company (platform admins)."""
    try:
        spec = CompanyCreate(
            name=name,
            gpu_share=gpu_share,
            cpu_share=cpu_share,
            min_slots=min_slots,
            max_slots=max_slots,
            gpu_hours_budget=gpu_hours_budget,
            cpu_hours_budget=cpu_hours_budget,
            rates=_rates(rate),
            retention_days=retention_days,
        )
    except ValidationError as exc:
        raise _invalid(exc) from exc
    with _client() as client:
        try:
            company = client.create_company(spec)
        except ClientError as exc:
            raise _fail(exc) from exc
    _show([company], as_json)


@company_app.command("list")
def company_list(as_json: AsJson = False) -> None:
    """Companies you may see: all of them for platform admins, your own otherwise."""
    with _client() as client:
        try:
            companies = client.companies()
        except ClientError as exc:
            raise _fail(exc) from exc
    _show(companies, as_json)


@company_app.command("update")
def company_update(
    name: Annotated[str, typer.Argument(help="company name")],
    gpu_share: GpuShare = None,
    cpu_share: CpuShare = None,
    min_slots: MinSlots = None,
    max_slots: MaxSlots = None,
    gpu_hours_budget: GpuBudget = None,
    cpu_hours_budget: CpuBudget = None,
    rate: Rates = None,
    retention_days: Retention = None,
    unlimited: Annotated[
        list[str] | None, typer.Option("--unlimited", help=f"remove a limit: {', '.join(UNLIMITED)} (repeat)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Change a company's settings; only the options given change. Raising a budget frees waiting jobs."""
    given: dict[str, object] = {
        key: value
        for key, value in {
            "gpu_share": gpu_share,
            "cpu_share": cpu_share,
            "min_slots": min_slots,
            "max_slots": max_slots,
            "gpu_hours_budget": gpu_hours_budget,
            "cpu_hours_budget": cpu_hours_budget,
            "rates": _rates(rate),
            "retention_days": retention_days,
        }.items()
        if value is not None
    }
    for item in unlimited or []:
        if item not in UNLIMITED:
            out.error(f"--unlimited {item!r}: choose one of {', '.join(UNLIMITED)}")
            raise typer.Exit(2)
        given[item.replace("-", "_")] = None
    if not given:
        out.error("nothing to change: give at least one option (see --help)")
        raise typer.Exit(2)
    try:
        spec = CompanyUpdate.model_validate(given)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    with _client() as client:
        try:
            company = client.update_company(name, spec)
        except ClientError as exc:
            raise _fail(exc) from exc
    _show([company], as_json)


@token_app.command("create")
def token_create(
    company: Annotated[str, typer.Option(help="the company the token acts for")],
    role: Annotated[Role, typer.Option(help="artist, company-admin or platform-admin")] = Role.ARTIST,
    name: Annotated[str, typer.Option(help="a label for the token")] = "",
    user: Annotated[str | None, typer.Option(help="the person it belongs to")] = None,
    expires_in_days: Annotated[int, typer.Option(help="days until it expires (0: never)")] = 90,
) -> None:
    """Create a token and print only the token on stdout (it is shown this once)."""
    try:
        spec = TokenCreate(company=company, role=role, name=name, user=user, expires_in_days=expires_in_days or None)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    with _client() as client:
        try:
            created = client.create_token(spec)
        except ClientError as exc:
            raise _fail(exc) from exc
    out.plain(created.token)
    expiry = f"expires {created.expires_at:%F}" if created.expires_at else "never expires"
    out.warn(f"token {created.id} ({created.company}, {created.role.value}) {expiry}; it is not shown again")


@token_app.command("list")
def token_list(
    company: Annotated[str | None, typer.Option(help="only this company's tokens")] = None,
    as_json: AsJson = False,
) -> None:
    """Tokens you manage (never their values)."""
    with _client() as client:
        try:
            items = client.tokens(company)
        except ClientError as exc:
            raise _fail(exc) from exc
    if as_json:
        out.emit_json({"tokens": [t.model_dump(mode="json") for t in items]})
        return
    out.table(
        ["id", "company", "role", "name", "user", "created", "expires", "revoked"],
        [
            [
                t.id,
                t.company,
                t.role.value,
                t.name,
                t.user or "",
                f"{t.created_at:%F}",
                f"{t.expires_at:%F}" if t.expires_at else "never",
                f"{t.revoked_at:%F %T}" if t.revoked_at else "",
            ]
            for t in items
        ],
    )


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="token id (from 'farm admin token list')")]) -> None:
    """Revoke a token: requests with it are refused from now on."""
    with _client() as client:
        try:
            token = client.revoke_token(token_id)
        except ClientError as exc:
            raise _fail(exc) from exc
    out.line(f"token {token.id} ({token.company}, {token.role.value}) revoked")


def login(
    url: Annotated[str | None, typer.Option(help="the farm's URL (default: FARM_URL or the saved one)")] = None,
    token: Annotated[str | None, typer.Option(help="the token (default: read from stdin, not echoed)")] = None,
) -> None:
    """Check a token against the farm and save it with the URL in your CLI config."""
    target = clientconfig.load(url).url
    value = (token or getpass.getpass("API token: ")).strip()
    if not value:
        out.error("no token given")
        raise typer.Exit(2)
    with AdminClient(target, value) as client:
        try:
            me = client.me()
        except ClientError as exc:
            raise _fail(exc) from exc
    path = clientconfig.write_file(target, value)
    out.line(f"logged in to {target} as {me.role.value} of {me.company}; saved in {path}")


def register(app: typer.Typer) -> None:
    """Add ``admin`` and ``login`` to the ``farm`` command."""
    app.add_typer(admin_app, name="admin")
    app.command("login")(login)
