import pytest

from numacert.cpuset import CPUSet, CPUSetError, format_cpulist


@pytest.mark.parametrize(
    "text,ids",
    [
        ("", []),
        ("0", [0]),
        ("0-3", [0, 1, 2, 3]),
        ("0-1,4,6-7\n", [0, 1, 4, 6, 7]),
        ("5,3", [3, 5]),
    ],
)
def test_parse(text, ids):
    assert CPUSet.parse(text) == set(ids)


@pytest.mark.parametrize("text", ["a", "3-1", "1-", "-1", "1,,2", "0-x"])
def test_parse_rejects(text):
    with pytest.raises(CPUSetError):
        CPUSet.parse(text)


def test_format_and_algebra_keep_type():
    s = CPUSet.parse("0-7") - {1, 2}
    assert isinstance(s, CPUSet)
    assert str(s) == "0,3-7"
    assert str(CPUSet([]) | {9, 10, 12}) == "9-10,12"
    assert format_cpulist([4, 2, 3, 8]) == "2-4,8"
