"""Payments in bulk: a CSV of received money bundled row by row through the payments use case (R7.1).

Idempotent on the bank's reference: a reference already loaded is reported and skipped. All or nothing:
every row is bundled inside one transaction, each in a savepoint so that a refusal (wrong amount, policy
ended: R7.3) becomes a line of the report; if any row is refused, or for a dry run, everything is rolled
back. Matching a payment to its due installment is the payments service's job (issue 9 moves it to go by
the reference, R7.6); this module only calls it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from server.db.models import ImportBatch
from server.db.repositories import records as records_repo
from server.domain.errors import DomainError
from server.domain.insured_list import RowProblem
from server.domain.payment_list import map_payment_header, validate_payment_rows
from server.services import payments as payments_service
from server.services.context import ServiceContext
from server.services.coverage_facts import coverage_day
from server.services.identity import Principal
from server.services.records.changes import Actor, audit_txn, change_row, record_many_txn
from server.services.records.files import read_table
from server.services.records.insured_lists import ListRejected

IMPORT_KIND: Final = "payments"


@dataclass(frozen=True, slots=True)
class PaymentLine:
    """What one row did (or would do)."""

    row: int
    reference: str
    policy_number: str
    amount: str
    paid_on: str
    status: str
    payment_id: int | None
    attachment_letters: list[str]


@dataclass(frozen=True, slots=True)
class PaymentsReport:
    """The result of a payments file."""

    file_name: str
    dry_run: bool
    applied: bool
    batch_id: int | None
    counts: dict[str, int]
    lines: list[PaymentLine]


async def import_payments(
    ctx: ServiceContext,
    actor: Actor,
    *,
    principal: Principal | None,
    content: bytes,
    file_name: str,
    encoding: str | None = None,
    dry_run: bool = False,
) -> PaymentsReport:
    """Bundle every payment of the file, or none.

    Raises:
        ListRejected: any row refused (422, with the per-row report); nothing is bundled.
    """
    table = read_table(content, file_name=file_name, encoding=encoding)
    now = ctx.clock.now()
    columns, problems = map_payment_header(table.header)
    if problems:
        raise _rejected(problems)
    entries, problems = validate_payment_rows(table.rows, columns, today=coverage_day(now))
    if problems:
        raise _rejected(problems)
    lines: list[PaymentLine] = []
    changes: list[dict[str, Any]] = []
    refused: list[RowProblem] = []
    batch_id: int | None = None
    async with ctx.uow() as uow:
        session = uow.session
        numbers = sorted({e.policy_number for e in entries})
        policies = await records_repo.policies_by_number(session, numbers)
        loaded = await records_repo.loaded_payment_references(session, [e.reference for e in entries])
        bundled: list[tuple[str, int]] = []
        for entry in entries:
            base: dict[str, Any] = dict(
                row=entry.row,
                reference=entry.reference,
                policy_number=entry.policy_number,
                amount=str(entry.amount),
                paid_on=entry.paid_on.isoformat(),
            )
            if entry.reference in loaded:
                lines.append(PaymentLine(**base, status="already_loaded", payment_id=None, attachment_letters=[]))
                continue
            policy = policies.get(entry.policy_number)
            if policy is None:
                refused.append(RowProblem(entry.row, "policy_number", entry.policy_number, "no such policy"))
                continue
            savepoint = await session.begin_nested()
            try:
                result = await payments_service.bundle_payment_txn(
                    session,
                    policy_id=policy.id,
                    amount=entry.amount,
                    bundled_on=entry.paid_on,
                    scheduled_payment_id=None,
                    principal=principal,
                    now=now,
                    reference=entry.pays_for,
                )
            except DomainError as exc:
                await savepoint.rollback()
                rules = f"{', '.join(exc.rules)}: " if exc.rules else ""
                refused.append(RowProblem(entry.row, "amount", str(entry.amount), f"{rules}{exc.message}"))
                continue
            await savepoint.commit()
            bundled.append((entry.reference, result.payment.id))
            lines.append(
                PaymentLine(
                    **base,
                    status="bundled",
                    payment_id=result.payment.id,
                    attachment_letters=[g.letter.number for g in result.attachment_letters],
                )
            )
        if refused:
            raise _rejected(refused)
        counts = {"bundled": len(bundled), "already_loaded": len(entries) - len(bundled)}
        if bundled and not dry_run:
            batch = ImportBatch(
                kind=IMPORT_KIND,
                policyholder_id=None,
                file_name=file_name[:300],
                file_sha256=hashlib.sha256(content).hexdigest(),
                actor=actor.key,
                counts=counts,
                created_at=now,
            )
            batch_id = await records_repo.add_import_batch(session, batch)
            records_repo.add_payment_references(session, batch_id, bundled)
            for line in lines:
                if line.payment_id is not None:
                    changes.append(
                        change_row(
                            actor,
                            now,
                            entity_type="payment",
                            entity_id=line.payment_id,
                            action="bundled",
                            batch_id=batch.id,
                            changes={
                                "reference": [None, line.reference],
                                "amount": [None, line.amount],
                                "policy_number": [None, line.policy_number],
                            },
                        )
                    )
            await session.flush()
            await record_many_txn(session, changes)
            await audit_txn(
                session, actor, now, action="payments.import", resource_type="import_batch", resource_id=batch.id
            )
            await uow.commit()
    return PaymentsReport(file_name, dry_run, batch_id is not None, batch_id, counts, lines)


def _rejected(problems: list[RowProblem]) -> ListRejected:
    return ListRejected(
        f"nothing was bundled: {len(problems)} problem(s) in the file",
        details={"problems": [p.as_dict() for p in problems[:1000]], "problem_count": len(problems)},
    )
