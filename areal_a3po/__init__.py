"""areal-a3po: A-3PO proximal-policy approximation for AReaL's decoupled PPO.

Importing this package is cheap (no torch, no AReaL). The AReaL coupling is applied by an import
hook installed at interpreter start (``areal_a3po.pth`` -> ``areal_a3po._bootstrap``), or explicitly
with :func:`activate`.
"""

__version__ = "0.1.0"


def activate() -> bool:
    """Patch AReaL in this process now (idempotent). Returns whether AReaL is hooked."""
    from areal_a3po import _bootstrap

    return _bootstrap.activate_now()


__all__ = ["__version__", "activate"]
