"""``telemed`` back-office commands: reference data, ``import-insured``, ``import-payments``, staff accounts.

Each command calls the same service as the admin API, as the operator running it (``cli:<os user>``
in the change history and audit trail), and prints the result as JSON. Exit status 2 means nothing
was changed: the report on stderr says why (by row and column for a file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from server.config import Settings
from server.domain.errors import DomainError
from server.domain.insured_list import parse_day
from server.services.context import ServiceContext

AddCommand = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


@contextlib.asynccontextmanager
async def service_context(settings: Settings) -> AsyncIterator[ServiceContext]:
    """A service context outside the server: the configured database and bus, the outbox sender."""
    from prometheus_client import CollectorRegistry

    from server.bus import make_bus
    from server.clock import SystemClock
    from server.db.engine import make_engine, make_session_factory
    from server.metrics import make_metrics
    from server.security.otp import OutboxSender
    from server.security.tokens import TokenService

    engine = make_engine(settings.effective_database_url)
    bus = make_bus(settings.redis_url, settings.redis_prefix)
    await bus.start()
    try:
        yield ServiceContext(
            settings=settings,
            session_factory=make_session_factory(engine),
            bus=bus,
            clock=SystemClock(),
            tokens=TokenService(
                settings.jwt_secret.get_secret_value(),
                settings.jwt_issuer,
                settings.jwt_audience,
                settings.access_token_ttl,
            ),
            code_sender=OutboxSender(settings.outbox_path),
            metrics=make_metrics(CollectorRegistry()),
        )
    finally:
        await bus.close()
        await engine.dispose()


def _json_default(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def print_json(value: object) -> None:
    """A service result (dataclasses, dates, money) as indented JSON on stdout."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif isinstance(value, list):
        value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type) else v for v in value]
    print(json.dumps(value, ensure_ascii=False, indent=2, default=_json_default))


def report_error(exc: DomainError) -> int:
    """Print a refusal and its per-row problems on stderr; exit status 2 (nothing changed)."""
    print(f"nothing changed: {exc.message}", file=sys.stderr)
    for problem in exc.details.get("problems", []):
        if "row" in problem:
            print(
                f"  row {problem['row']}, {problem['column']} = {problem['value']!r}: {problem['reason']}",
                file=sys.stderr,
            )
        else:
            print(f"  {problem.get('field')}: {problem.get('problem')}", file=sys.stderr)
    return 2


def run(
    settings_of: Callable[[argparse.Namespace], Settings],
    use_case: Callable[[ServiceContext, argparse.Namespace], Awaitable[object]],
) -> Callable[[argparse.Namespace], int]:
    """A command that runs one use case and prints its result."""

    def command(args: argparse.Namespace) -> int:
        async def main() -> int:
            async with service_context(settings_of(args)) as ctx:
                try:
                    result = await use_case(ctx, args)
                except DomainError as exc:
                    return report_error(exc)
                if result is not None:
                    print_json(result)
                return 0

        return asyncio.run(main())

    return command


def _day(raw: str) -> date:
    day = parse_day(raw)
    if day is None:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD or dd.mm.yyyy): {raw}")
    return day


def _money(raw: str) -> Decimal:
    try:
        return Decimal(raw.replace(" ", "").replace(",", "."))
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not an amount: {raw}") from exc


def _pair(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE: {raw}")
    return key.strip(), value.strip()


def _read_file(path: str) -> bytes:
    from server.services.records.files import MAX_FILE_BYTES

    file = Path(path)
    if file.stat().st_size > MAX_FILE_BYTES:
        # Read just past the limit so that the service refuses it with its own message.
        with file.open("rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    return file.read_bytes()


# ----------------------------------------------------------------------------- use cases


async def _policyholder_create(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.services.records import reference
    from server.services.records.changes import cli_actor

    return await reference.create_policyholder(
        ctx, cli_actor(), kind=args.kind, name=args.name, tax_id=args.tax_id, departments=args.department or []
    )


async def _departments_add(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.services.records import reference
    from server.services.records.changes import cli_actor

    return await reference.add_departments(ctx, cli_actor(), args.policyholder_id, args.department)


async def _clinic_create(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.services.records import reference
    from server.services.records.changes import cli_actor

    return await reference.create_clinic(
        ctx,
        cli_actor(),
        name=args.name,
        city=args.city,
        address=args.address,
        phone=args.phone,
        price_category=args.price_category,
        has_access_system=args.access_system,
    )


async def _program_create(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.domain.records import ProgramTerms
    from server.services.records import reference
    from server.services.records.changes import cli_actor

    tariffs = {key: _money(value) for key, value in (args.tariff or [])}
    return await reference.create_program(
        ctx,
        cli_actor(),
        code=args.code,
        name=args.name,
        clinic_ids=args.clinic or [],
        terms=ProgramTerms(
            components=args.component or [],
            price_category=args.price_category,
            tariffs=tariffs,
            registry_offered=args.registry_offered,
            telemedicine_allowance_per_year=args.telemedicine_allowance,
        ),
    )


async def _program_clinics(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.services.records import reference
    from server.services.records.changes import cli_actor

    return await reference.update_program(ctx, cli_actor(), args.program_id, clinic_ids=args.clinic or [])


async def _dispatch_point_create(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.domain.errors import InvalidInput
    from server.services.records import reference
    from server.services.records.changes import cli_actor

    try:
        hours = json.loads(args.hours)
    except ValueError as exc:
        raise InvalidInput(f"--hours is not JSON: {exc}", code="invalid_record") from exc
    if not isinstance(hours, dict):
        raise InvalidInput('--hours is {"always": true} or {"0": ["08:00", "20:00"], ...}', code="invalid_record")
    return await reference.create_dispatch_point(
        ctx,
        cli_actor(),
        kind=args.kind,
        city=args.city,
        name=args.name,
        phone=args.phone,
        timezone=args.timezone,
        hours=hours,
        notes=args.notes,
    )


async def _policy_create(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.domain.records import Installment
    from server.services.records import reference
    from server.services.records.changes import cli_actor

    installments = [Installment(_day(day), _money(amount)) for day, amount in (args.installment or [])]
    if not installments:
        installments = [Installment(args.starts_on, args.premium)]
    return await reference.create_policy(
        ctx,
        cli_actor(),
        number=args.number,
        policyholder_id=args.policyholder_id,
        program_id=args.program_id,
        starts_on=args.starts_on,
        ends_on=args.ends_on,
        payment_mode=args.payment_mode,
        premium=args.premium,
        installments=installments,
    )


def _progress(total: int | None = None) -> Callable[[Iterable[Any]], Iterable[Any]]:
    from tqdm import tqdm

    def wrap(rows: Iterable[Any]) -> Iterable[Any]:
        bar: Iterable[Any] = tqdm(rows, total=total, unit=" rows", desc="checking", file=sys.stderr, mininterval=0.5)
        return bar

    return wrap


async def _import_insured(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.services.records import insured_lists
    from server.services.records.changes import cli_actor

    content = _read_file(args.file)
    report = await insured_lists.import_insured_list(
        ctx,
        cli_actor(),
        policyholder_id=args.policyholder_id,
        content=content,
        file_name=Path(args.file).name,
        encoding=args.encoding,
        removal_date=args.removal_date,
        dry_run=args.dry_run,
        progress=_progress() if not args.quiet else None,
    )
    counts = report.counts
    state = "dry run, nothing written" if report.dry_run else ("applied" if report.applied else "nothing to change")
    print(
        f"{state}: {counts['added']} added, {counts['changed']} changed, {counts['removed']} removed "
        f"(on {report.removal_date.isoformat()}), {counts['unchanged']} unchanged",
        file=sys.stderr,
    )
    return report


async def _import_payments(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.services.records import bulk_payments
    from server.services.records.changes import cli_actor

    return await bulk_payments.import_payments(
        ctx,
        cli_actor(),
        principal=None,
        content=_read_file(args.file),
        file_name=Path(args.file).name,
        encoding=args.encoding,
        dry_run=args.dry_run,
    )


async def _users_create(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.services.records import staff
    from server.services.records.changes import cli_actor

    created = await staff.create_account(
        ctx,
        cli_actor(),
        username=args.username,
        role=args.role,
        full_name=args.full_name or args.username,
        specialties=args.specialty or [],
        timezone=args.timezone,
        hr_policyholder_id=args.policyholder_id,
    )
    print(f"created {created.account.role} account {created.account.username}")
    print(f"one-time set-password code (valid until {created.set_password.expires_at.isoformat()}; shown once):")
    print(f"  {created.set_password.code}")
    print(f"  link: {created.set_password.link}")
    return None


async def _users_reset(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.services.records import staff
    from server.services.records.changes import cli_actor

    accounts = {a.username: a for a in await staff.list_accounts(ctx)}
    account = accounts.get(args.username)
    if account is None:
        print(f"no such account: {args.username}", file=sys.stderr)
        return None
    reset = await staff.reset_password(ctx, cli_actor(), account.id)
    print(f"password of {args.username} reset; all sessions ended. One-time code (shown once):")
    print(f"  {reset.set_password.code}")
    print(f"  link: {reset.set_password.link}")
    return None


async def _coverage_end(ctx: ServiceContext, args: argparse.Namespace) -> object:
    from server.services.records import coverage_end
    from server.services.records.changes import cli_actor

    return await coverage_end.end_coverage_due(ctx, cli_actor())


def register(add: AddCommand, settings_of: Callable[[argparse.Namespace], Settings]) -> None:
    """Add the back-office commands to the ``telemed`` parser."""
    holder = add("policyholder-create", run(settings_of, _policyholder_create), "create a policyholder")
    holder.add_argument("--kind", choices=["corporate", "individual"], required=True)
    holder.add_argument("--name", required=True)
    holder.add_argument("--tax-id")
    holder.add_argument("--department", action="append", help="repeat for each department")

    departments = add("departments-add", run(settings_of, _departments_add), "add departments to a policyholder")
    departments.add_argument("--policyholder-id", type=int, required=True)
    departments.add_argument("--department", action="append", required=True)

    clinic = add("clinic-create", run(settings_of, _clinic_create), "create a clinic")
    clinic.add_argument("--name", required=True)
    clinic.add_argument("--city", required=True)
    clinic.add_argument("--address", required=True)
    clinic.add_argument("--phone", required=True)
    clinic.add_argument("--price-category", type=int, required=True)
    clinic.add_argument("--access-system", action="store_true", help="passes need a photo (R6.4)")

    program = add("program-create", run(settings_of, _program_create), "create a program with its clinic list")
    program.add_argument("--code", required=True)
    program.add_argument("--name", required=True)
    program.add_argument("--component", action="append", help="outpatient, dental, ambulance, inpatient, telemedicine")
    program.add_argument("--price-category", type=int, required=True)
    program.add_argument("--tariff", type=_pair, action="append", help="dispatcher=40000, registry=52000")
    program.add_argument("--registry-offered", action="store_true")
    program.add_argument("--telemedicine-allowance", type=int, default=0, help="consultations per year")
    program.add_argument("--clinic", type=int, action="append", help="clinic id on the program's list")

    clinics = add("program-clinics", run(settings_of, _program_clinics), "replace a program's clinic list")
    clinics.add_argument("--program-id", type=int, required=True)
    clinics.add_argument("--clinic", type=int, action="append")

    point = add("dispatch-point-create", run(settings_of, _dispatch_point_create), "create a console or branch (R9)")
    point.add_argument("--kind", choices=["console", "branch_curator", "federal_line"], required=True)
    point.add_argument("--city", required=True)
    point.add_argument("--name", required=True)
    point.add_argument("--phone", required=True)
    point.add_argument("--timezone", required=True, help="IANA, e.g. Asia/Yekaterinburg")
    point.add_argument("--hours", required=True, help='{"always": true} or {"0": ["08:00", "20:00"], ..., "6": null}')
    point.add_argument("--notes")

    policy = add("policy-create", run(settings_of, _policy_create), "create a policy with its payment schedule")
    policy.add_argument("--number", required=True)
    policy.add_argument("--policyholder-id", type=int, required=True)
    policy.add_argument("--program-id", type=int, required=True)
    policy.add_argument("--starts-on", type=_day, required=True)
    policy.add_argument("--ends-on", type=_day, required=True)
    policy.add_argument("--payment-mode", choices=["lump_sum", "installments"], required=True)
    policy.add_argument("--premium", type=_money, required=True)
    policy.add_argument("--installment", type=_pair, action="append", help="DUE_DATE=AMOUNT, repeat")

    insured = add(
        "import-insured",
        run(settings_of, _import_insured),
        "load an employer's list of insured persons (CSV or XLSX), all or nothing",
    )
    insured.add_argument("file")
    insured.add_argument("--policyholder-id", type=int, required=True)
    insured.add_argument("--encoding", help="force the CSV encoding (cp1251, utf-8); default: detect")
    insured.add_argument("--removal-date", type=_day, help="cover of persons not on the list ends on (default today)")
    insured.add_argument("--dry-run", action="store_true", help="report who is added, changed, removed; write nothing")
    insured.add_argument("--quiet", action="store_true", help="no progress bar")

    payments = add(
        "import-payments",
        run(settings_of, _import_payments),
        "bundle received payments from a CSV (policy_number, amount, date, reference), all or nothing",
    )
    payments.add_argument("file")
    payments.add_argument("--encoding")
    payments.add_argument("--dry-run", action="store_true")

    users = add(
        "users-create",
        run(settings_of, _users_create),
        "create a staff account; prints a one-time set-password code (no password is ever chosen here)",
    )
    users.add_argument("username")
    users.add_argument("--role", choices=["doctor", "dispatcher", "hr", "admin"], required=True)
    users.add_argument("--full-name")
    users.add_argument("--specialty", action="append")
    users.add_argument("--timezone", help="a doctor's IANA time zone (default Europe/Moscow)")
    users.add_argument("--policyholder-id", type=int, help="the policyholder an HR user is bound to")

    reset = add(
        "users-reset-password",
        run(settings_of, _users_reset),
        "end every session of a staff account and print a one-time code to set a new password",
    )
    reset.add_argument("username")
