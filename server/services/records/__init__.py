"""The insurer's back office: reference data, insured lists, bulk payments, staff accounts, change history."""
