"""Tests of keyturn.observability."""
