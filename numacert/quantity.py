"""Kubernetes resource quantities, parsed once into integers.

Parsing uses the Kubernetes Python client's own parser; formatting follows the canonical form
that apimachinery's Quantity.String() prints for binary quantities (used in kubelet messages
such as `the total amount "1Gi" of type "memory" ...`).
"""

from __future__ import annotations

import math
from decimal import Decimal

from kubernetes.utils import parse_quantity

_BINARY = [("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)]
_DECIMAL = [("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)]


class QuantityError(ValueError):
    """Not a valid Kubernetes quantity."""


def _parse(value: str | int | float) -> Decimal:
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    try:
        return Decimal(parse_quantity(str(value).strip()))
    except (ValueError, TypeError, ArithmeticError):
        raise QuantityError(f"not a quantity: {value!r}") from None


def to_bytes(value: str | int | float) -> int:
    """A memory or hugepages quantity in bytes, rounded up like Quantity.Value()."""
    return int(math.ceil(_parse(value)))


def to_millis(value: str | int | float) -> int:
    """A CPU quantity in milli-CPUs, rounded up like Quantity.MilliValue()."""
    return int(math.ceil(_parse(value) * 1000))


def is_binary_suffixed(value: str) -> bool:
    return any(str(value).strip().endswith(s) for s, _ in _BINARY)


def format_bytes(value: int, binary: bool = True) -> str:
    """Canonical quantity string of an integer amount: 1073741824 -> "1Gi", 0 -> "0".

    Binary format uses the largest binary suffix dividing the value exactly; the decimal format
    likewise with k, M, G, ... (apimachinery's canonicalisation for integers).
    """
    if value == 0:
        return "0"
    table = _BINARY if binary else _DECIMAL
    for suffix, factor in table:
        if value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)


def hugepage_resource_name(page_size_bytes: int) -> str:
    """hugepages-2Mi, hugepages-1Gi: the resource name the kubelet derives from a page size."""
    return "hugepages-" + format_bytes(page_size_bytes)


def hugepage_size_from_resource(name: str) -> int:
    """hugepages-2Mi -> 2097152. Raises QuantityError for anything else."""
    if not name.startswith("hugepages-"):
        raise QuantityError(f"not a hugepages resource: {name!r}")
    return to_bytes(name[len("hugepages-") :])
