"""Transactions: the transaction coordinator (pure state machine, records, trio runtime)."""
