"""The console's guards: token and basic auth (and the token's cookie flow), the security
headers, and the command line's refusal to listen beyond loopback without credentials."""

from __future__ import annotations

import base64
import sys
from contextlib import ExitStack

import pytest
from webkit import console

from jackstalk.testing import BeanstalkdServer

PATHS = ("/", "/tubes/default", "/api/snapshot", "/metrics", "/static/console.js")


def test_security_headers_and_no_inline_script(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address]) as web:
        for path in PATHS:
            answer = web.get(path)
            assert answer.status_code == 200, path
            policy = answer.headers["content-security-policy"]
            assert "script-src 'self'" in policy
            assert "frame-ancestors 'none'" in policy
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["referrer-policy"] == "same-origin"
        page = web.get("/").text
        # The only <script> elements load a file, or hold JSON data (never run).
        for chunk in page.split("<script")[1:]:
            head = chunk.split(">", 1)[0]
            assert 'src="/static/' in head or 'type="application/json"' in head
        assert "onclick" not in page
        assert "innerHTML" not in web.get("/static/console.js").text


def test_token(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address], token="s3cret/+") as web:
        for path in PATHS:
            assert web.get(path).status_code == 401, path
        assert web.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert web.get("/?token=wrong").status_code == 401
        ok = web.get("/api/snapshot", headers={"authorization": "Bearer s3cret/+"})
        assert ok.status_code == 200
        # A visit with ?token= sets the cookie and drops the token from the address.
        moved = web.get("/tubes/default", params={"token": "s3cret/+", "id": "1"})
        assert moved.status_code == 303
        assert moved.headers["location"] == "/tubes/default?id=1"
        assert "HttpOnly" in moved.headers["set-cookie"]
        for path in PATHS:
            assert web.get(path).status_code == 200, path
        assert web.get("/", params={"token": "s3cret/+"}).headers["location"] == "/"
        # Never a redirect to another site, whatever the path looks like.
        away = web.get("http://testserver//evil.example/x", params={"token": "s3cret/+"})
        assert away.headers["location"] == "/evil.example/x"


def test_basic_auth(beanstalkd: BeanstalkdServer) -> None:
    def basic(credentials: str) -> dict[str, str]:
        return {"authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}

    with console([beanstalkd.address], basic_auth="ops:pa:ss") as web:
        refused = web.get("/")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic ")
        assert web.get("/", headers=basic("ops:wrong")).status_code == 401
        assert web.get("/", headers={"authorization": "Basic !!!"}).status_code == 401
        assert web.get("/", headers=basic("ops:pa:ss")).status_code == 200
        assert web.get("/metrics", headers=basic("ops:pa:ss")).status_code == 200


def test_token_or_basic(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address], token="t", basic_auth="u:p") as web:
        assert web.get("/").status_code == 401
        assert web.get("/", headers={"authorization": "Bearer t"}).status_code == 200
        assert web.get("/", auth=("u", "p")).status_code == 200
        assert web.get("/", auth=("u", "x")).status_code == 401


def test_credentials_do_not_bypass_read_only(beanstalkd: BeanstalkdServer) -> None:
    with console([beanstalkd.address], token="t", read_only=True) as web:
        headers = {"authorization": "Bearer t"}
        assert web.post("/tubes/default/kick", headers=headers).status_code == 403
        assert web.post("/tubes/default/kick").status_code == 401


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "192.0.2.1:8080", "[::]:0", "example.org:80"])
def test_non_loopback_needs_credentials(listen: str) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "jackstalk", "web", "--address", "127.0.0.1:1", "--listen", listen],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--token or --basic-auth" in done.stderr
    assert done.stdout == ""


def test_app_needs_a_server() -> None:
    from jackstalk._app.web import WebConfig, create_app

    with ExitStack(), pytest.raises(ValueError, match="at least one server"):
        create_app(WebConfig(addresses=[]))
