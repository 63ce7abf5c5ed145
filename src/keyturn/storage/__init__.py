"""The only module tree that speaks SQL."""
