"""How long one passkey assertion takes to verify in-process: py_webauthn's check alone (parse,
client data, authenticator data, ECDSA P-256 signature), and Keyturn's whole check on a SQLite
file (the challenge used up, the passkey looked up, the check, the counter and audit stored).

    .venv/bin/python -m bench.passkey_assertion [--assertions 500]

The assertions come from the software authenticator of the tests (tests/support/
authenticator.py, so the `test` extra must be installed). Each call is timed on its own; the
median and the 95th percentile are reported, in microseconds.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.authenticator import SoftwareAuthenticator, from_b64url
from webauthn import verify_authentication_response

from keyturn.config import Settings
from keyturn.core.sealing import new_sealing_key
from keyturn.services.container import build_services
from keyturn.storage.migrations import upgrade_database

ORIGIN = "http://keyturn.bench"


def timed_us(
    function: Callable[[dict[str, Any]], object], items: list[dict[str, Any]]
) -> dict[str, float]:
    samples = []
    for item in items:
        started = time.perf_counter_ns()
        function(item)
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    return {
        "median_us": round(statistics.median(samples), 1),
        "p95_us": round(samples[int(len(samples) * 0.95)], 1),
        "n": len(samples),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--assertions", type=int, default=500)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=f"sqlite:///{Path(directory) / 'bench.db'}",
            issuer=ORIGIN,
            secrets_key=new_sealing_key(),
            argon2_memory_kib=1024,
            argon2_time_cost=1,
        )
        services = build_services(settings)
        upgrade_database(services.database)
        services.keyring.ensure_signing_key()
        try:
            user = services.accounts.register(
                email="bench@example.com", password=secrets.token_urlsafe(24)
            )
            authenticator = SoftwareAuthenticator(origin=ORIGIN, counts=False)
            creation = json.loads(services.passkeys.registration_options(user.id))
            passkey = services.passkeys.register(user.id, authenticator.create(creation))

            options = json.loads(services.passkey_login.options_for_user(user.id))
            one = authenticator.get(options)
            library = timed_us(
                lambda assertion: verify_authentication_response(
                    credential=assertion,
                    expected_challenge=from_b64url(options["challenge"]),
                    expected_rp_id="keyturn.bench",
                    expected_origin=ORIGIN,
                    credential_public_key=passkey.public_key,
                    credential_current_sign_count=0,
                    require_user_verification=True,
                ),
                [one] * arguments.assertions,
            )
            assertions = [
                authenticator.get(json.loads(services.passkey_login.options_for_user(user.id)))
                for _ in range(arguments.assertions)
            ]
            keyturn = timed_us(
                lambda assertion: services.passkey_login.verify_assertion_for_user(
                    user.id, assertion
                ),
                assertions,
            )
        finally:
            services.database.dispose()
            services.password_hashing.close()
    print(json.dumps({"py_webauthn_verify": library, "keyturn_check_sqlite": keyturn}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
