"""Admin routes for money and attachment letters: bundle a payment (R4.6, R7.1-R7.3), list payments due,
list the attachment letters to send and mark them sent (R7.2)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from aiohttp import web
from pydantic import Field

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int
from server.keys import context_key
from server.services import payments as service
from server.services.dispatch_views import AttachmentLetterView, ScheduledPaymentView
from server.services.identity import ROLE_ADMIN
from server.services.payments import BundleResult, WaitingPayment

routes = web.RouteTableDef()
ROLES = (ROLE_ADMIN,)
TAGS = ("admin",)


class PaymentCreate(ApiModel):
    """Money received for a policy, to bundle with it."""

    policy_id: int = Field(gt=0)
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    bundled_on: date | None = None
    scheduled_payment_id: int | None = Field(default=None, gt=0)
    reference: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        description="R7.6: the schedule the payment names (the policy number or an additional agreement number)",
    )


class PaymentMatch(ApiModel):
    """The scheduled payment a waiting payment settles (R7.6)."""

    scheduled_payment_id: int = Field(gt=0)


class WaitingPaymentsQuery(ApiModel):
    policy_id: int | None = Field(default=None, gt=0)


class PaymentsDueQuery(ApiModel):
    """Which unpaid scheduled payments to list."""

    policy_id: int | None = Field(default=None, gt=0)
    due_by: date | None = None


class AttachmentLettersQuery(ApiModel):
    """Attachment letters due to be sent by a day (default today)."""

    to_send_on: date | None = None
    include_sent: bool = False


@endpoint(
    routes,
    "POST",
    "/api/admin/payments",
    summary="Bundle a payment with a policy: attachment letters for its registry persons (R7.1-R7.3), and the "
    "change to registry takes effect with the first additional premium (R4.6); 409 when already bundled",
    tags=TAGS,
    roles=ROLES,
    body=PaymentCreate,
    response=BundleResult,
    status=201,
    errors=[404, 409],
)
async def bundle_payment(request: web.Request, body: PaymentCreate) -> BundleResult:
    """One transaction: payment, activation and letters are written together or not at all."""
    result = await service.bundle_payment(
        request.app[context_key],
        current_principal(request),
        policy_id=body.policy_id,
        amount=body.amount,
        bundled_on=body.bundled_on,
        scheduled_payment_id=body.scheduled_payment_id,
        reference=body.reference,
        hold_unmatched=True,
    )
    return result


@endpoint(
    routes,
    "GET",
    "/api/admin/payments/unmatched",
    summary="Payments waiting for an admin: ambiguous, or naming no unpaid schedule (R7.6), with the reasons",
    tags=TAGS,
    roles=ROLES,
    query=WaitingPaymentsQuery,
    response=list[WaitingPayment],
)
async def waiting_payments(request: web.Request, query: WaitingPaymentsQuery) -> list[WaitingPayment]:
    """Oldest first; nothing is attached until one is matched."""
    return await service.waiting_payments(request.app[context_key], policy_id=query.policy_id)


@endpoint(
    routes,
    "POST",
    "/api/admin/payments/{payment_id}/match",
    summary="Match a waiting payment to the scheduled payment (the person's schedule) it settles; it is bundled "
    "today, with its attachment letters and activation (R7.6, R7.1, R4.6)",
    tags=TAGS,
    roles=ROLES,
    body=PaymentMatch,
    response=BundleResult,
    errors=[404, 409],
)
async def match_payment(request: web.Request, body: PaymentMatch) -> BundleResult:
    """Already matched or the schedule already paid: 409; another policy's scheduled payment: 404."""
    return await service.match_waiting_payment(
        request.app[context_key],
        current_principal(request),
        path_int(request, "payment_id"),
        scheduled_payment_id=body.scheduled_payment_id,
    )


@endpoint(
    routes,
    "GET",
    "/api/admin/payments/due",
    summary="Scheduled payments not yet bundled (premiums and additional premiums), by due date",
    tags=TAGS,
    roles=ROLES,
    query=PaymentsDueQuery,
    response=list[ScheduledPaymentView],
)
async def payments_due(request: web.Request, query: PaymentsDueQuery) -> list[ScheduledPaymentView]:
    """An unpaid installment past its due date ends registry attachments (R7.4)."""
    rows = await service.payments_due(request.app[context_key], policy_id=query.policy_id, due_by=query.due_by)
    return rows


@endpoint(
    routes,
    "GET",
    "/api/admin/attachment-letters",
    summary="Attachment letters to send to clinics by a day (send_on <= to_send_on; R7.2)",
    tags=TAGS,
    roles=ROLES,
    query=AttachmentLettersQuery,
    response=list[AttachmentLetterView],
)
async def attachment_letters(request: web.Request, query: AttachmentLettersQuery) -> list[AttachmentLetterView]:
    """Unsent letters only, unless include_sent."""
    rows = await service.attachment_letters_to_send(
        request.app[context_key], query.to_send_on, include_sent=query.include_sent
    )
    return rows


@endpoint(
    routes,
    "POST",
    "/api/admin/attachment-letters/{letter_id}/sent",
    summary="Record that an attachment letter was sent to the clinic (R7.2)",
    tags=TAGS,
    roles=ROLES,
    response=AttachmentLetterView,
    errors=[404, 409],
)
async def mark_sent(request: web.Request) -> AttachmentLetterView:
    """Marking twice is a 409."""
    row = await service.mark_attachment_letter_sent(
        request.app[context_key], current_principal(request), path_int(request, "letter_id")
    )
    return row
