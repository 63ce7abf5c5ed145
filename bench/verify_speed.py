"""How long one access-token check takes in-process: a repeated (cached) token and a new one,
against PyJWT's bare jwt.decode of the same tokens in the same run.

    .venv/bin/python -m bench.verify_speed [--tokens 5000] [--rounds 5] [--algorithm EdDSA]

Measured: keyturn.verify.Verifier.verify (what other services use; JWKS served from memory),
core.tokens.verify_access_token with a VerifiedTokenCache (what the server runs), and
jwt.decode(token, key, algorithms=[alg], audience=..., issuer=...). Rounds alternate; the
median per-call time of the rounds is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import jwt

from keyturn.core.keys import KeyRing, generate_private_key_pem, load_signing_key, new_kid
from keyturn.core.tokens import VerifiedTokenCache, mint_access_token, verify_access_token
from keyturn.verify import Verifier

ISSUER = "http://keyturn.bench"
AUDIENCE = "keyturn"


def per_call_us(function: Callable[[str], object], tokens: list[str]) -> float:
    started = time.perf_counter_ns()
    for token in tokens:
        function(token)
    return (time.perf_counter_ns() - started) / len(tokens) / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000, help="new tokens per round (5000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--algorithm", default="EdDSA", choices=["EdDSA", "ES256", "RS256"])
    args = parser.parse_args()

    now = datetime.now(UTC)
    key = load_signing_key(
        kid=new_kid(),
        algorithm=args.algorithm,
        private_key_pem=generate_private_key_pem(args.algorithm),
        created_at=now - timedelta(minutes=1),
    )
    ring = KeyRing([key])
    jwks = ring.jwks(now=now)

    def mint(count: int) -> list[str]:
        return [
            mint_access_token(
                key=key,
                issuer=ISSUER,
                audience=AUDIENCE,
                subject=f"user{n}",
                session_id=f"session{n}",
                roles=("user",),
                client_id="keyturn",
                now=now,
                lifetime=timedelta(minutes=15),
            )[0]
            for n in range(count)
        ]

    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=jwks))
    verifier = Verifier(ISSUER, audience=AUDIENCE, http_transport=transport)
    repeated = mint(1)[0]
    verifier.verify(repeated)
    cache = VerifiedTokenCache(10_000)
    timestamp = time.time()

    def core_verify(token: str) -> object:
        claims = cache.get(token, now=timestamp)
        if claims is None:
            claims = verify_access_token(
                token, keyring=ring, issuer=ISSUER, audience=AUDIENCE, now=timestamp
            )
            cache.put(token, claims)
        return claims

    def bare_pyjwt(token: str) -> object:
        return jwt.decode(
            token, key.verifying_key, algorithms=[key.algorithm], audience=AUDIENCE, issuer=ISSUER
        )

    core_verify(repeated)
    samples: dict[str, list[float]] = {
        "pyjwt_decode_new": [],
        "core_new": [],
        "verifier_new": [],
        "core_cached": [],
        "verifier_cached": [],
    }
    same = [repeated] * 20_000
    for _ in range(args.rounds):
        fresh = mint(args.tokens)
        samples["pyjwt_decode_new"].append(per_call_us(bare_pyjwt, fresh))
        samples["core_new"].append(per_call_us(core_verify, fresh))
        samples["verifier_new"].append(per_call_us(verifier.verify, mint(args.tokens)))
        samples["core_cached"].append(per_call_us(core_verify, same))
        samples["verifier_cached"].append(per_call_us(verifier.verify, same))
        cache.clear()
        core_verify(repeated)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    result = {
        "kind": "verify_speed",
        "algorithm": args.algorithm,
        "tokens": args.tokens,
        "rounds": args.rounds,
        **{f"{name}_us": round(value, 2) for name, value in medians.items()},
        "core_new/pyjwt": round(medians["core_new"] / medians["pyjwt_decode_new"], 3),
        "verifier_new/pyjwt": round(medians["verifier_new"] / medians["pyjwt_decode_new"], 3),
    }
    print(f"one access-token check, {args.algorithm}, medians of {args.rounds} rounds (us)")
    for name, value in medians.items():
        print(f"  {name:<18} {value:8.2f}")
    print(f"  core new / PyJWT decode      {result['core_new/pyjwt']:.3f}")
    print(f"  verifier new / PyJWT decode  {result['verifier_new/pyjwt']:.3f}")
    print("BENCH_JSON " + json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
