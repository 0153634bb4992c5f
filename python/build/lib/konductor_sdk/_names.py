"""Deterministic claim names, exactly as the Rust side computes them, so that a claim
made from Python and one made by koncli for the same holder are the same object."""

BARRIER_PART_LEN = 24
HOLDER_PART_LEN = 24
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def _sanitise(text: str, limit: int) -> str:
    out = []
    for c in text.lower():
        if ("a" <= c <= "z") or ("0" <= c <= "9"):
            out.append(c)
        elif not out or out[-1] != "-":
            out.append("-")
    trimmed = "".join(out).strip("-")[:limit]
    return trimmed.rstrip("-")


def _fnv1a64(owner: bytes, holder: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in owner + b"\xff" + holder:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _base32(value: int) -> str:
    return "".join(_ALPHABET[(value >> (i * 5)) & 31] for i in range(12, -1, -1))


def claim_name(owner: str, holder: str) -> str:
    """`<owner>-<holder>-<hash>`: the name of `holder`'s claim on `owner`."""
    parts = [p for p in (_sanitise(owner, BARRIER_PART_LEN), _sanitise(holder, HOLDER_PART_LEN)) if p]
    digest = _base32(_fnv1a64(owner.encode(), holder.encode()))
    return "".join(p + "-" for p in parts) + digest


def arrival_name(barrier: str, holder: str) -> str:
    """The name of `holder`'s Arrival at `barrier`."""
    return claim_name(barrier, holder)


def permit_name(kind_word: str, lock: str, holder: str) -> str:
    """The name of `holder`'s Permit on the `kind_word` lock `lock` (`mutex`, …)."""
    return claim_name(f"{kind_word}-{lock}", holder)
