from __future__ import annotations

from django.urls import path

from users import views

urlpatterns = [
    path("users", views.users_list, name="users-list"),
    path("users/<str:id_user>", views.user_detail, name="user-detail"),
    path("auth/token", views.auth_token, name="auth-token"),
]
