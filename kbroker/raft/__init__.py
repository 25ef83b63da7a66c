"""The metadata quorum: log, snapshots, and the single-voter driver (a Raft later)."""
