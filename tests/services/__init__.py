"""Tests of keyturn.services."""
