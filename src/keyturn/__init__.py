"""Keyturn: an authentication server built on JWT access tokens and rotating refresh tokens."""

__version__ = "0.1.0"
