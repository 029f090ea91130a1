"""Django's error views for this project (handler400/403/404/500 in urls.py): JSON for the
API, Django's own pages for the admin and the room pages.

With DEBUG off Django answers an error through these views and never with a traceback; the
API's clients (curl, scripts, the room page's fetch) read `{"error": ...}` as every API
view writes it. The admin and the /ui/ pages are read by people in a browser, where
Django's short HTML pages are what they expect. With DEBUG on, Django shows its technical
pages instead (django/views/debug.py): development only.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

HTML_PREFIXES = ("/admin/", "/ui/")


def _html(request: HttpRequest) -> bool:
    return request.path_info.startswith(HTML_PREFIXES) or request.path_info == "/ui"


def _handler(
    status: int, message: str, page: Callable[..., HttpResponse]
) -> Callable[..., HttpResponse]:
    def handle(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if _html(request):
            return page(request) if status == 500 else page(request, exception)
        return JsonResponse({"error": message}, status=status)

    handle.__name__ = f"error_{status}"
    return handle


bad_request = _handler(400, "Bad request", defaults.bad_request)
permission_denied = _handler(403, "Forbidden", defaults.permission_denied)
page_not_found = _handler(404, "Not found", defaults.page_not_found)
server_error = _handler(500, "Internal server error", defaults.server_error)
