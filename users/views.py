"""HTTP in, JSON out for /users; the rules live in users.services."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Concatenate, ParamSpec

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from identity_playground.client_address import client_address
from users import identity, ratelimit, services

MAX_BODY_BYTES = 64 * 1024
NOT_FOUND = "Cannot find user with such id"


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


P = ParamSpec("P")
View = Callable[Concatenate[HttpRequest, P], HttpResponse]


def serves(*methods: str) -> Callable[[View[P]], View[P]]:
    """Any other method gets 405 JSON with the served ones in Allow (RFC 9110 section 15.5.6).

    The view is exempt from CsrfViewMiddleware, which would otherwise answer an unserved
    POST or DELETE with its HTML 403 page before the view could say 405; a view serving a
    write does its own CSRF check (_csrf_rejection).
    """

    def decorate(view: View[P]) -> View[P]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
            if request.method not in methods:
                response = _error(405, "Method not allowed")
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)

        return csrf_exempt(wrapper)

    return decorate


def _csrf_rejection(request: HttpRequest, *, browsers_only: bool = True) -> str | None:
    """Why a browser's write is refused, or None.

    Browsers always send Origin on a PUT/PATCH, so those requests get Django's full CSRF
    check (token from the page in X-CSRFToken + the csrftoken cookie). A request without
    Origin comes from a script such as curl, which no other site can make a user's browser
    send; the documented `curl -X PUT` therefore keeps working.
    """
    if browsers_only and "HTTP_ORIGIN" not in request.META:
        return None
    check = CsrfViewMiddleware(lambda _request: HttpResponse())
    check.process_request(request)
    rejection = check.process_view(request, lambda _request: HttpResponse(), (), {})
    return None if rejection is None else "CSRF check failed: reload the page and try again"


def _address(request: HttpRequest) -> str:
    return client_address(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def _too_many_writes(request: HttpRequest) -> HttpResponse | None:
    """429 with Retry-After (RFC 6585 section 4) past HTTP_RENAMES_PER_MINUTE_PER_ADDRESS
    writes from this client address on this worker (users.ratelimit)."""
    limit = settings.HTTP_RENAMES_PER_MINUTE_PER_ADDRESS
    wait = ratelimit.RENAMES.retry_after(_address(request), limit)
    return _retry_later(wait, f"Too many renames from this address: retry in {wait} s")


def _too_much_fanout(request: HttpRequest, id_user: str) -> HttpResponse | None:
    """429 with Retry-After past HTTP_RENAME_FANOUT_PER_MINUTE_PER_ADDRESS room events from
    this client address's renames on this worker: a rename costs the room events it makes
    the cluster publish, as the cluster answers (services.rename_reach), or 1 if unknown."""
    limit = settings.HTTP_RENAME_FANOUT_PER_MINUTE_PER_ADDRESS
    if limit <= 0:
        return None  # no limit: the cluster is not asked
    reach = services.rename_reach(id_user)
    cost = 1 if reach is None else reach
    wait = ratelimit.RENAME_FANOUT.retry_after(_address(request), limit, cost=cost)
    message = f"Renames from this address reach too many room events: retry in {wait} s"
    return _retry_later(wait, message)


def _retry_later(wait: int, message: str) -> HttpResponse | None:
    if not wait:
        return None
    response = _error(429, message)
    response["Retry-After"] = str(wait)
    return response


@serves("GET", "HEAD")
def users_list(request: HttpRequest) -> HttpResponse:
    return JsonResponse([user.as_json() for user in services.user_list()], safe=False)


@serves("GET", "HEAD", "PUT", "PATCH")
def user_detail(request: HttpRequest, id_user: str) -> HttpResponse:
    if request.method in ("GET", "HEAD"):
        try:
            return JsonResponse(services.user_get(id_user=id_user).as_json())
        except services.UserNotFound:
            return _error(404, NOT_FOUND)
    if refusal := _too_many_writes(request):
        return refusal
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BODY_BYTES:
        return _error(413, f"Body larger than {MAX_BODY_BYTES} bytes")
    csrf_problem = _csrf_rejection(request)
    if csrf_problem:
        return _error(403, csrf_problem)
    if identity.signed_mode():
        try:
            services.authorize_rename(
                id_user=id_user,
                bearer=identity.bearer_token(request.headers.get("Authorization", "")),
                account=request.user,
            )
        except services.RenameForbidden as exc:
            return _error(403 if exc.credentials else 401, str(exc))
    try:
        services.user_get(id_user=id_user)
    except services.UserNotFound:
        return _error(404, NOT_FOUND)
    if len(request.body) > MAX_BODY_BYTES:
        return _error(413, f"Body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError):
        return _error(400, "Invalid JSON body")
    try:
        name = services.validate_rename_body(body)
    except services.InvalidUserData as exc:
        return _error(400, str(exc))
    if refusal := _too_much_fanout(request, id_user):
        return refusal
    try:
        services.user_rename(id_user=id_user, name=name)
    except services.UserNotFound:  # deleted meanwhile
        return _error(404, NOT_FOUND)
    return HttpResponse(status=204)


@serves("POST")
def auth_token(request: HttpRequest) -> HttpResponse:
    """POST /auth/token: a token for the playground user the session's login is linked to.

    The session cookie is the credential, so Django's CSRF check applies to every request,
    with an Origin or not (a script holding the cookie reads the CSRF cookie too).
    """
    csrf_problem = _csrf_rejection(request, browsers_only=False)
    if csrf_problem:
        return _error(403, csrf_problem)
    if not request.user.is_authenticated:
        return _error(401, "Log in first")
    user = services.user_of_account(request.user)
    if user is None:
        return _error(403, "This login is not linked to a playground user")
    return JsonResponse({"token": identity.make_token(user.id_user)})
