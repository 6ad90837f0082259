"""Errors for bad input: every one names the field, the bad value and what is allowed."""


class FtsimError(ValueError):
    """Base class of every bad-input error ftsim raises (a ValueError)."""


def bad(field: str, value, allowed) -> FtsimError:
    """Build the one-line error used everywhere: `field: 'value' is not allowed; allowed: ...`."""
    if not isinstance(allowed, str):
        allowed = ", ".join(str(a) for a in allowed)
    return FtsimError(f"{field}: {value!r} is not allowed; allowed: {allowed}")
