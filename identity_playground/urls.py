from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # signed mode's login for the room page (settings.LOGIN_URL)
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="rooms/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("users.urls")),
    path("", include("rooms.http.urls")),
]

# JSON for the API, Django's pages for the admin and /ui/ (identity_playground/errors.py)
handler400 = "identity_playground.errors.bad_request"
handler403 = "identity_playground.errors.permission_denied"
handler404 = "identity_playground.errors.page_not_found"
handler500 = "identity_playground.errors.server_error"
