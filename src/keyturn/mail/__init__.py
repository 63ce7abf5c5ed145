"""Mail: a durable outbox in the database, the sender that empties it, and the messages."""
