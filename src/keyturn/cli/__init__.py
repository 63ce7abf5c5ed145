"""The `keyturn` command."""
