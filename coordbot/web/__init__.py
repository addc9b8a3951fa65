"""coordbot's HTTP side: the platforms' webhooks, the health check and the office's web desk.

``make_web_app(engine=…, settings=…, calendar=…, clock=…, routes=webhooks)`` builds the application;
``start_site(app, host, port)`` serves it. The desk's building blocks for further pages and the API:
``coordbot.web.auth`` (``require``, ``Roles``, ``Viewer``, ``require_form``, ``require_department``),
``coordbot.web.desk`` (``desk_of``, ``in_db``, ``page``, ``link``, ``words``).
"""

from coordbot.web.app import health, make_web_app, start_site

__all__ = ["health", "make_web_app", "start_site"]
