"""The ``cordon`` command line and the demo wiring."""


def version() -> str:
    """This installation's version (the wheel's, or the checkout's pyproject version when editable)."""
    from importlib import metadata

    try:
        return metadata.version("cordon")
    except metadata.PackageNotFoundError:
        return "unknown"
