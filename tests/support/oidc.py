"""A real OpenID Connect provider for the tests (the npm package oidc-provider, run by Node from
tests/support/oidc_provider/), and a way through its login and consent pages without a browser.
"""

from __future__ import annotations

import fcntl
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
CLIENT_ID = "keyturn"
OTHER_CLIENT_ID = "keyturn-other"
CLIENT_SECRET = "keyturn-test-client-secret-0123456789"
_SUBMIT = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def missing_tools() -> str | None:
    """Why the provider cannot run here, or None."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: the OpenID Connect provider of the tests needs it"
    return None


class OidcProvider:
    """`node provider.mjs PORT`: issuer http://localhost:PORT, listening on 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.issuer = f"http://localhost:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def install(self) -> None:
        """`npm ci` from the committed lock file when node_modules is missing (a fresh clone).
        Test processes running side by side take turns: a second `npm ci` would delete the
        first one's node_modules under it."""
        with (PROVIDER_DIR / ".install.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
                return
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"],
                cwd=PROVIDER_DIR,
                check=True,
                capture_output=True,
                timeout=300,
            )

    def start(self) -> OidcProvider:
        self.install()
        self.process = subprocess.Popen(
            ["node", "provider.mjs", str(self.port)],
            cwd=PROVIDER_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        discovery = f"http://127.0.0.1:{self.port}/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"the OpenID Connect provider exited: {stderr}")
            try:
                if httpx.get(discovery, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the OpenID Connect provider did not start within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def settings_entry(
        self, provider_id: str = "local", *, client_id: str = CLIENT_ID
    ) -> dict[str, str]:
        """An entry of KEYTURN_OIDC_PROVIDERS for this provider."""
        return {
            "id": provider_id,
            "name": provider_id.capitalize(),
            "issuer": self.issuer,
            "client_id": client_id,
            "client_secret": CLIENT_SECRET,
        }


async def sign_in_at_provider(
    authorize_url: str, *, login: str, callback_prefix: str, cancel: bool = False
) -> str:
    """Go through the provider's own login and consent pages as `login` (or cancel at the
    login page); return the URL the provider sends the browser back to."""
    async with httpx.AsyncClient(timeout=10) as browser:
        url = authorize_url
        for _ in range(12):
            if url.startswith(callback_prefix):
                return url
            response = await browser.get(url)
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            response.raise_for_status()
            page = response.text
            if cancel:
                url = urljoin(url, f"{httpx.URL(url).path}/abort")
                continue
            action = _SUBMIT.search(page)
            assert action is not None, page
            form = (
                {"prompt": "login", "login": login, "password": "any"}
                if 'value="login"' in page
                else {"prompt": "consent"}
            )
            response = await browser.post(urljoin(url, action.group(1)), data=form)
            assert response.is_redirect, response.text
            url = urljoin(url, response.headers["location"])
        raise AssertionError(f"the provider never sent the browser back (last at {url})")
