"""Password hashing (Argon2id, bcrypt imports) and the NIST-style policy."""

from __future__ import annotations

import bcrypt
import pytest

from keyturn.config import OWASP_ARGON2_MEMORY_KIB, OWASP_ARGON2_TIME_COST
from keyturn.core.passwords import (
    Argon2Parameters,
    PasswordHashing,
    common_passwords,
    password_problems,
)

LIGHT = PasswordHashing(Argon2Parameters(memory_kib=1024, time_cost=1, parallelism=1))


def test_argon2id_round_trip_and_owasp_parameters() -> None:
    owasp = PasswordHashing(
        Argon2Parameters(
            memory_kib=OWASP_ARGON2_MEMORY_KIB, time_cost=OWASP_ARGON2_TIME_COST, parallelism=1
        )
    )
    hashed = owasp.hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert owasp.verify_password(hashed, "correct horse battery staple")
    assert not owasp.verify_password(hashed, "correct horse battery stapler")
    assert not owasp.needs_rehash(hashed)
    assert owasp.needs_rehash(LIGHT.hash_password("x"))


@pytest.mark.parametrize("prefix", ["2a", "2b", "2y"])
def test_bcrypt_hashes_from_node_apps_verify_and_need_rehash(prefix: str) -> None:
    hashed = bcrypt.hashpw(b"hunter2-but-longer", bcrypt.gensalt(rounds=4)).decode()
    hashed = f"${prefix}$" + hashed[4:]
    assert LIGHT.verify_password(hashed, "hunter2-but-longer")
    assert not LIGHT.verify_password(hashed, "hunter3-but-longer")
    assert LIGHT.needs_rehash(hashed)


def test_bcrypt_long_passwords_are_cut_at_72_bytes_as_node_does() -> None:
    long_password = "p" * 80
    hashed = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    assert LIGHT.verify_password(hashed, long_password)


@pytest.mark.parametrize("garbage", ["", "plain", "$argon2id$broken", "$2b$04$short"])
def test_unreadable_hash_never_verifies(garbage: str) -> None:
    assert not LIGHT.verify_password(garbage, "anything")


def test_policy_length_and_passphrases() -> None:
    assert password_problems("short") != []
    assert password_problems("a long passphrase with spaces and ünïcödé") == []
    assert password_problems("x" * 1024 + "y") != []


def test_policy_refuses_common_passwords_case_insensitively() -> None:
    assert len(common_passwords()) > 5000
    assert password_problems("Password1") != []
    assert password_problems("QWERTYUIOP") != []
    assert password_problems("aaaaaaaaaaaa") != []


def test_policy_refuses_the_accounts_own_names() -> None:
    assert password_problems("ada@example.com", email="ada@example.com") != []
    assert password_problems("lovelace1815", username="Lovelace1815") != []


def test_policy_has_no_composition_rules() -> None:
    """NIST SP 800-63B: no demands for digits, symbols or mixed case."""
    assert password_problems("purple elephants dance") == []


def test_policy_counts_the_characters_typed_not_their_compatibility_expansion() -> None:
    """U+FDFA is one character that NFKC expands into 18: it is a one-character password."""
    assert password_problems("\ufdfa") != []
    assert password_problems("\ufdfa" + "a4dk7q2") == []


def test_policy_counts_a_letter_and_its_combining_accent_as_one_character() -> None:
    assert password_problems("e\u0301" * 7) != []  # seven é, typed with combining accents


def test_a_password_typed_in_full_width_verifies_against_its_half_width_form() -> None:
    hashed = LIGHT.hash_password("correct horse 123")
    assert LIGHT.verify_password(
        hashed, "correct horse \uff11\uff12\uff13"
    )  # an IME's full-width digits


def test_hashes_of_unnormalised_passwords_from_before_still_verify() -> None:
    from argon2 import PasswordHasher

    legacy = PasswordHasher(memory_cost=1024, time_cost=1, parallelism=1).hash(
        "\uff50\uff41\uff53\uff53 phrase"
    )
    assert LIGHT.verify_password(legacy, "\uff50\uff41\uff53\uff53 phrase")
    assert not LIGHT.verify_password(legacy, "pass phrase!")
