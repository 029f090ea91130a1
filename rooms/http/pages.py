"""HTML pages: the landing page /ui/ and the live room page /ui/<room>?id_user=N.

Plain Django views rendering templates; everything live happens in the browser
(static/rooms/*.js) through the same public API and Socket.IO events any client uses.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode

from rooms.cluster.names import InvalidRoom, validate_room
from users import identity, services
from users.models import NAME_MAX_LENGTH, PlaygroundUser

DEFAULT_ROOM = "lobby"


def room_page_url(room: str, id_user: str | None = None) -> str:
    """/ui/<room>, with ?id_user= when given; reverse() percent-encodes the room."""
    url = reverse("room-page", kwargs={"room": room})
    return f"{url}?{urlencode({'id_user': id_user})}" if id_user else url


def avatar_hue(id_user: str) -> int:
    """A stable colour per user for the initials badge (static/rooms/room.js does the same)."""
    return int(id_user) * 137 % 360  # the golden angle: neighbours differ


def _user_links(room: str) -> list[dict[str, Any]]:
    return [
        {
            "id_user": u.id_user,
            "name": u.name,
            "hue": avatar_hue(u.id_user),
            "url": room_page_url(room, u.id_user),
        }
        for u in services.user_list()
    ]


def landing(request: HttpRequest) -> HttpResponse:
    """GET /ui/: the users, a form to open a room as one of them, the live cluster.

    The form submits here (GET ?id_user=&room=) and is redirected to the room page, so it
    works without JavaScript and the room name is percent-encoded in one place.
    In signed mode the page is the login's user: no user to pick, a link to log in instead.
    """
    signed = identity.signed_mode()
    base = {"users": _user_links(DEFAULT_ROOM), "signed": signed}
    if signed:
        base["login_url"] = f"{reverse('login')}?{urlencode({'next': reverse('landing')})}"
    room = request.GET.get("room")
    if room is not None:
        try:
            room = validate_room(room.strip())
        except InvalidRoom as exc:
            context = {**base, "room": room, "error": str(exc)}
            return render(request, "rooms/landing.html", context, status=400)
        id_user = None if signed else request.GET.get("id_user") or None
        return HttpResponseRedirect(room_page_url(room, id_user))
    return render(request, "rooms/landing.html", {**base, "room": DEFAULT_ROOM})


def room_page(request: HttpRequest, room: str) -> HttpResponse:
    """GET /ui/<room>?id_user=N: the room's members, live, and my name, editable in place.

    An unknown or missing id_user gets the list of users to choose from instead, since the
    socket would be refused (CONNECT_ERROR "Unknown id_user") anyway.
    """
    try:
        room = validate_room(room)
    except InvalidRoom as exc:
        return render(request, "rooms/bad_room.html", {"error": str(exc)}, status=400)
    if identity.signed_mode():
        return _signed_room_page(request, room)
    raw_id_user = request.GET.get("id_user")
    try:
        user = services.user_get(id_user=raw_id_user)
    except services.UserNotFound:
        choices = {"room": room, "raw_id_user": raw_id_user, "users": _user_links(room)}
        status = 404 if raw_id_user else 200  # an id that names nobody, or none given yet
        return render(request, "rooms/choose_user.html", choices, status=status)
    return _render_room(request, room, user)


def _signed_room_page(request: HttpRequest, room: str) -> HttpResponse:
    """Signed mode: the page is the logged-in account's user, whatever ?id_user says; its
    socket connects with that user's token (users.identity)."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    user = services.user_of_account(request.user)
    if user is None:
        return render(request, "rooms/no_account_user.html", status=403)
    claimed = request.GET.get("id_user")
    identity_note = {
        "account": request.user.get_username(),
        "ignored_id_user": claimed if claimed and claimed != user.id_user else None,
    }
    token = identity.make_token(user.id_user)
    return _render_room(request, room, user, token=token, identity_note=identity_note)


def _render_room(
    request: HttpRequest,
    room: str,
    user: PlaygroundUser,
    token: str | None = None,
    identity_note: dict[str, Any] | None = None,
) -> HttpResponse:
    config = {
        "room": room,
        "token": token,  # signed mode: the socket's CONNECT auth
        "id_user": user.id_user,
        "name": user.name,
        # Sent back as X-CSRFToken on PUT /users/<id>; get_token() also sets the cookie.
        "csrf_token": get_token(request),
        "choose_url": room_page_url(room),  # where a refused page sends its user
    }
    context = {
        "room": room,
        "user": user,
        "hue": avatar_hue(user.id_user),
        "config": config,
        "name_max_length": NAME_MAX_LENGTH,
        "identity_note": identity_note,  # signed mode: whose identity the page uses
    }
    return render(request, "rooms/room.html", context)
