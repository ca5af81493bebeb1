"""Argument checks shared by components, so a bad constructor argument reads the same everywhere."""


def require_int(owner, name, value, minimum):
    """``value`` as an int, or a ValueError naming ``owner``'s argument ``name`` when it is not an integer >= minimum."""
    if int(value) != value or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
