"""``jackstalk web``: a live console of one or several beanstalkd servers in the browser.

Needs the ``web`` extra (``pip install 'jackstalk[web]'``: Starlette, uvicorn, Jinja2,
prometheus_client, python-multipart). :func:`create_app` builds the ASGI application from a
:class:`WebConfig`; :func:`serve` runs it with uvicorn, as the command line does.
"""

from __future__ import annotations

from jackstalk._app.web.app import WebConfig, create_app
from jackstalk._app.web.serve import serve

__all__ = ["WebConfig", "create_app", "serve"]
