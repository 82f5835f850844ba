import pytest

from numacert.quantity import (
    QuantityError,
    format_bytes,
    hugepage_resource_name,
    hugepage_size_from_resource,
    to_bytes,
    to_millis,
)


def test_parse():
    assert to_bytes("1100Mi") == 1100 * 2**20
    assert to_bytes("1G") == 10**9
    assert to_millis("1500m") == 1500
    assert to_millis("2") == 2000
    assert to_millis(0.5) == 500


def test_format():
    assert format_bytes(0) == "0"
    assert format_bytes(2**30) == "1Gi"
    assert format_bytes(12) == "12"
    assert format_bytes(1100 * 2**20) == "1100Mi"
    assert hugepage_resource_name(2 * 2**20) == "hugepages-2Mi"
    assert hugepage_size_from_resource("hugepages-1Gi") == 2**30


def test_bad():
    with pytest.raises(QuantityError):
        to_bytes("12Qi")
