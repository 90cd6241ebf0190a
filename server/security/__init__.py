"""Credentials: password hashing, JWT access tokens, opaque refresh tokens and one-time codes."""
