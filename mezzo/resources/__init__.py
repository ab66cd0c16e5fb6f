"""The Resources value type: scalars, ranges, sets; roles and reservations; parsing."""
