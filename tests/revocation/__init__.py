"""Tests of keyturn.revocation."""
