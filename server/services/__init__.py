"""Use cases: each combines domain rules, repositories and the bus in one transaction."""
