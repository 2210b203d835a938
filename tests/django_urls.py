"""URLconf of the Django app the middleware tests wrap (see tests/test_middleware.py)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path

from tests.support.echo import reply_for


def callback(request: HttpRequest) -> HttpResponse:
    """The WeCom callback view: the middleware already decrypted the body."""
    return HttpResponse(reply_for(request.environ), content_type="text/xml")


def other(request: HttpRequest) -> HttpResponse:
    """Every other path."""
    return HttpResponse(b"plain", content_type="text/plain")


urlpatterns = [
    path("wecom", callback),
    path("other", callback),
    re_path(r"^.*$", other),
]
