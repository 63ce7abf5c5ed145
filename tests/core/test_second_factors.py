"""The rules of second factors: TOTP steps and replay, recovery codes, the amr of a login."""

from __future__ import annotations

import pyotp
import pytest

from keyturn.core.second_factors import (
    hash_recovery_code,
    matching_step,
    new_recovery_codes,
    new_totp_secret,
    normalize_recovery_code,
    provisioning_uri,
    second_step_amr,
)

NOW = 1_900_000_015.0  # 15 s into a 30 s step
STEP = int(NOW) // 30


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * 30)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_codes_of_the_current_step_and_one_either_side_match(offset: int) -> None:
    secret = new_totp_secret()
    assert matching_step(secret, code_at(secret, STEP + offset), now=NOW, after_step=None) == (
        STEP + offset
    )


@pytest.mark.parametrize("offset", [-2, 2, -10])
def test_codes_two_steps_away_do_not_match(offset: int) -> None:
    secret = new_totp_secret()
    code = code_at(secret, STEP + offset)
    if any(code == code_at(secret, STEP + near) for near in (-1, 0, 1)):
        pytest.skip("a one-in-a-million collision of codes")
    assert matching_step(secret, code, now=NOW, after_step=None) is None


def test_a_step_already_used_or_an_earlier_one_never_matches_again() -> None:
    secret = new_totp_secret()
    code = code_at(secret, STEP)
    assert matching_step(secret, code, now=NOW, after_step=STEP) is None
    assert matching_step(secret, code_at(secret, STEP - 1), now=NOW, after_step=STEP) is None
    assert matching_step(secret, code_at(secret, STEP + 1), now=NOW, after_step=STEP) == STEP + 1


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_codes_match_nothing(typed: str) -> None:
    assert matching_step(new_totp_secret(), typed, now=NOW, after_step=None) is None


def test_a_code_typed_with_a_space_matches() -> None:
    secret = new_totp_secret()
    code = code_at(secret, STEP)
    assert matching_step(secret, f"{code[:3]} {code[3:]}", now=NOW, after_step=None) == STEP


def test_secrets_are_160_bits_and_the_uri_names_rfc_6238_parameters() -> None:
    secret = new_totp_secret()
    assert len(secret) == 32  # base32: 5 bits a letter
    uri = provisioning_uri(secret, account="ada@example.com", issuer="Keyturn")
    parsed = pyotp.parse_uri(uri)
    assert (parsed.secret, parsed.digits, parsed.interval) == (secret, 6, 30)
    assert uri.startswith("otpauth://totp/Keyturn:ada%40example.com?")


def test_recovery_codes_are_ten_distinct_80_bit_codes_in_groups() -> None:
    codes = new_recovery_codes()
    assert len(set(codes)) == 10
    for code in codes:
        groups = code.split("-")
        assert [len(group) for group in groups] == [4, 4, 4, 4]
        assert normalize_recovery_code(code) == code.replace("-", "")


def test_recovery_codes_are_read_forgivingly_and_hashed_only() -> None:
    code = new_recovery_codes(1)[0]
    typed = " " + code.upper().replace("-", " ") + " "
    assert normalize_recovery_code(typed) == code.replace("-", "")
    digest = hash_recovery_code(code.replace("-", ""))
    assert len(digest) == 64 and code.replace("-", "") not in digest
    for bad in ("", "abcd-efgh", "ilou" * 4, code + "x"):
        assert normalize_recovery_code(bad) is None


def test_a_second_step_adds_its_method_and_mfa_once() -> None:
    assert second_step_amr(("pwd",), ("otp",)) == ("pwd", "otp", "mfa")
    assert second_step_amr(("pwd",), ("hwk",)) == ("pwd", "hwk", "mfa")
    assert second_step_amr(("fed", "mfa"), ("otp",)) == ("fed", "mfa", "otp")
