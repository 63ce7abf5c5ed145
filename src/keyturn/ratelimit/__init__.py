"""Rate limiting: the protocol, its memory, Redis and database backends, and the limits Keyturn
applies (login failures are counted by services/login.py)."""
