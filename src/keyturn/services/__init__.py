"""Use cases over core rules, storage and shared state."""
