"""Auth routes: policy login with a one-time code, staff login, refresh, logout, WS ticket, /api/me."""

from __future__ import annotations

from datetime import date, datetime

from aiohttp import web
from pydantic import Field, model_validator

from server.api import browser_session
from server.api.endpoints import ApiModel, current_principal, endpoint
from server.api.proxies import client_address
from server.domain.errors import Unauthorized
from server.domain.insured_number import normalize_insured_number
from server.keys import code_sender_key, context_key
from server.security.otp import OutboxSender
from server.services import auth as auth_service
from server.services import profile
from server.services.identity import ROLE_INSURED, STAFF_ROLES
from server.services.profile import MeView

routes = web.RouteTableDef()
ALL_ROLES = (ROLE_INSURED, *sorted(STAFF_ROLES))


class PolicyLoginStart(ApiModel):
    """The insured number on the card (or the policy number) and birth date: identifiers, not secrets (A7).

    On a corporate policy several people may share a birth date: with the policy number, they
    add the last 4 digits of the phone on file (the answer 409 ``phone_digits_required`` says so).
    """

    insured_number: str | None = Field(default=None, min_length=12, max_length=20, pattern=r"^[0-9 \-]+$")
    policy_number: str | None = Field(default=None, min_length=3, max_length=40, pattern=r"^[A-Za-z0-9\-/]+$")
    birth_date: date
    phone_last_digits: str | None = Field(default=None, pattern=r"^[0-9]{4}$")

    @model_validator(mode="after")
    def _one_identifier(self) -> PolicyLoginStart:
        if (self.insured_number is None) == (self.policy_number is None):
            raise ValueError("send insured_number (on your card) or policy_number, not both")
        if self.insured_number is not None and normalize_insured_number(self.insured_number) is None:
            raise ValueError("insured_number is 12 digits with a check digit: check it against your card")
        return self


class PolicyLoginStarted(ApiModel):
    challenge_id: str
    expires_in: int
    delivery: str
    message: str
    dev_hint: str | None = Field(default=None, description="dev mode only: where the demo's one-time code can be read")


class PolicyLoginVerify(ApiModel):
    challenge_id: str = Field(min_length=8, max_length=64)
    code: str = Field(pattern=r"^[0-9]{6}$")


class StaffLogin(ApiModel):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


class RefreshRequest(ApiModel):
    """Non-browser clients send the token; the web app sends ``{}`` with its cookie and header."""

    refresh_token: str | None = Field(default=None, min_length=10, max_length=200)


class TokenResponse(ApiModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_at: datetime
    refresh_token: str | None = Field(description="null for the web app, which gets it as an HttpOnly cookie")
    refresh_expires_at: datetime
    role: str


class WebSocketTicketResponse(ApiModel):
    ticket: str
    expires_at: datetime
    url: str


def _tokens(pair: auth_service.TokenPair, request: web.Request) -> TokenResponse | web.Response:
    """The token pair; a browser gets the refresh token as an HttpOnly cookie instead of in the body."""
    if not browser_session.is_browser(request):
        return TokenResponse(
            access_token=pair.access_token,
            expires_at=pair.access_expires_at,
            refresh_token=pair.refresh_token,
            refresh_expires_at=pair.refresh_expires_at,
            role=pair.role,
        )
    body = TokenResponse(
        access_token=pair.access_token,
        expires_at=pair.access_expires_at,
        refresh_token=None,
        refresh_expires_at=pair.refresh_expires_at,
        role=pair.role,
    )
    response = web.json_response(body.model_dump(mode="json"))
    environment = request.app[context_key].settings.environment
    browser_session.set_refresh_cookie(response, request, pair.refresh_token, pair.refresh_expires_at, environment)
    return response


@endpoint(
    routes,
    "POST",
    "/api/auth/policy/start",
    summary="Start a policy login: a one-time code goes to the phone on file",
    tags=["auth"],
    body=PolicyLoginStart,
    response=PolicyLoginStarted,
    errors=[409, 422, 429, 503],
)
async def start_policy_login(request: web.Request, body: PolicyLoginStart) -> PolicyLoginStarted:
    """Same answer whether or not the policy exists, so it cannot be used to probe policies."""
    started = await auth_service.start_policy_login(
        request.app[context_key],
        policy_number=body.policy_number.upper() if body.policy_number is not None else None,
        insured_number=normalize_insured_number(body.insured_number) if body.insured_number is not None else None,
        phone_last_digits=body.phone_last_digits,
        birth_date=body.birth_date,
        client_address=client_address(request),
    )
    dev_hint = None
    demo_outbox = isinstance(request.app[code_sender_key], OutboxSender)
    if request.app[context_key].settings.environment == "dev" and demo_outbox:
        dev_hint = "telemed outbox --last 1"
    return PolicyLoginStarted(
        challenge_id=started.challenge_id,
        expires_in=started.expires_in,
        delivery=started.delivery,
        message="If the number and birth date match our records, a code was sent to the phone on file.",
        dev_hint=dev_hint,
    )


@endpoint(
    routes,
    "POST",
    "/api/auth/policy/verify",
    summary="Exchange the one-time code for an access token and a refresh token",
    tags=["auth"],
    body=PolicyLoginVerify,
    response=TokenResponse,
    errors=[401, 422, 429],
)
async def verify_policy_login(request: web.Request, body: PolicyLoginVerify) -> TokenResponse | web.Response:
    """Codes are single use, bound to their challenge, and capped at five guesses."""
    pair = await auth_service.verify_policy_login(
        request.app[context_key], challenge_id=body.challenge_id, code=body.code, client_address=client_address(request)
    )
    return _tokens(pair, request)


@endpoint(
    routes,
    "POST",
    "/api/auth/login",
    summary="Staff login by username and password",
    tags=["auth"],
    body=StaffLogin,
    response=TokenResponse,
    errors=[401, 422, 429],
)
async def staff_login(request: web.Request, body: StaffLogin) -> TokenResponse | web.Response:
    """Doctors, dispatchers, HR and admins log in with an Argon2id-hashed password."""
    pair = await auth_service.staff_login(
        request.app[context_key], username=body.username, password=body.password, client_address=client_address(request)
    )
    return _tokens(pair, request)


@endpoint(
    routes,
    "POST",
    "/api/auth/refresh",
    summary="Rotate the refresh token; reuse of a spent one ends the session",
    tags=["auth"],
    body=RefreshRequest,
    response=TokenResponse,
    errors=[401, 422],
)
async def refresh(request: web.Request, body: RefreshRequest) -> TokenResponse | web.Response:
    """Single-use refresh tokens with reuse detection; from the body, or the browser's cookie + header."""
    token = body.refresh_token or browser_session.cookie_refresh_token(request)
    if token is None:
        raise Unauthorized(
            "a refresh token is required (the cookie also needs its header)", code="invalid_refresh_token"
        )
    return _tokens(await auth_service.refresh(request.app[context_key], refresh_token=token), request)


@endpoint(
    routes,
    "POST",
    "/api/auth/logout",
    summary="End this session: tokens and open sockets stop working",
    tags=["auth"],
    roles=ALL_ROLES,
    status=200,
    errors=[401],
)
async def logout(request: web.Request) -> web.Response:
    """Revoke the session behind the caller's access token."""
    ctx = request.app[context_key]
    await auth_service.logout(ctx, current_principal(request))
    response = web.json_response({"logged_out": True})
    browser_session.clear_refresh_cookie(response, request, ctx.settings.environment)
    return response


@endpoint(
    routes,
    "POST",
    "/api/auth/ws-ticket",
    summary="A single-use ticket (30 s) to open the client WebSocket without a token in the URL",
    tags=["auth"],
    roles=ALL_ROLES,
    response=WebSocketTicketResponse,
    errors=[401],
)
async def websocket_ticket(request: web.Request) -> WebSocketTicketResponse:
    """Browsers cannot set headers on a WebSocket; the ticket goes in the first frame."""
    ticket, expires_at = await auth_service.issue_websocket_ticket(request.app[context_key], current_principal(request))
    public = request.app[context_key].settings.public_url
    url = ("ws" + public.removeprefix("http") + "/api/ws") if public else "/api/ws"
    return WebSocketTicketResponse(ticket=ticket, expires_at=expires_at, url=url)


@endpoint(
    routes,
    "GET",
    "/api/me",
    summary="Who am I: the caller's identity and basic details",
    tags=["auth"],
    roles=ALL_ROLES,
    response=MeView,
    errors=[401],
)
async def me(request: web.Request) -> MeView:
    """Insured persons see their policy; staff see their account."""
    return await profile.who_am_i(request.app[context_key], current_principal(request))
