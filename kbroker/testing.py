"""Test helpers for users' CI: a throwaway broker on a free port (filled in by the server work)."""
