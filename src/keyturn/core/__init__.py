"""Keyturn's rules, pure: no web framework, database, Redis or network."""
