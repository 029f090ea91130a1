from __future__ import annotations

from django.urls import URLPattern, path
from django.views.generic import RedirectView

from rooms.http import pages

# /<room>/users, /workers, /rooms, /healthz and /socket.io/ are served before Django
# (rooms.http.routing).
urlpatterns: list[URLPattern] = [
    path("", RedirectView.as_view(pattern_name="landing"), name="home"),
    path("ui", RedirectView.as_view(pattern_name="landing")),
    path("ui/", pages.landing, name="landing"),
    # `path`, not `str`: Django has already decoded %2F, so a room name holding "/" (valid,
    # and reachable as /<room%2F...>/users) would otherwise have no page.
    path("ui/<path:room>", pages.room_page, name="room-page"),
]
