"""The insurer's rules (R1-R12) as pure functions on plain data: no I/O, no framework, no clock."""
