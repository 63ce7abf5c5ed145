"""Keyturn's benchmark: a real `keyturn serve`, load from a separate process, one table."""
