"""The example bot in a Django project: ``gunicorn example_app.django_site:application``.

In a real project, wrap the application of ``wsgi.py`` the same way; the handlers are plain
functions on a :class:`~flask_wecom.receivers.Receiver` (example_app/bot.py).
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse
from django.urls import path

from example_app.bot import receiver
from flask_wecom.middleware import WeComMiddleware

settings.configure(
    DEBUG=False,
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret"),
)


def home(request: HttpRequest) -> HttpResponse:
    """A page of the Django site: everything but the callback URL is Django's."""
    return HttpResponse("the Django site\n", content_type="text/plain")


urlpatterns = [path("", home)]

application = WeComMiddleware.from_config(get_wsgi_application(), receiver)
