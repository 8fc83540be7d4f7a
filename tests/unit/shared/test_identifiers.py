"""BSN, postcode and gemeente code rules."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.identifiers import is_valid_bsn, normalise_postcode, validate_gemeente_code, validate_pc4

WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def elfproef_sum(digits: str) -> int:
    return sum(int(d) * w for d, w in zip(digits, WEIGHTS, strict=True))


@st.composite
def valid_bsns(draw: st.DrawFn) -> str:
    """Eight digits and the last digit that makes the elfproef hold (when one exists)."""
    head = draw(st.text("0123456789", min_size=8, max_size=8))
    partial = sum(int(d) * w for d, w in zip(head, WEIGHTS[:8], strict=True))
    last = partial % 11  # partial - last ≡ 0 (mod 11)
    from hypothesis import assume

    assume(last <= 9 and int(head + str(last)) != 0)
    return head + str(last)


@given(valid_bsns())
def test_every_number_passing_the_elfproef_is_a_valid_bsn(bsn: str) -> None:
    assert elfproef_sum(bsn) % 11 == 0
    assert is_valid_bsn(bsn)


@given(valid_bsns(), st.integers(0, 8), st.integers(1, 9))
def test_changing_one_digit_of_a_bsn_makes_it_invalid(bsn: str, position: int, delta: int) -> None:
    digits = list(bsn)
    digits[position] = str((int(digits[position]) + delta) % 10)
    assert not is_valid_bsn("".join(digits))


@pytest.mark.parametrize("value", ["999999990", "123456782", "111222333"])
def test_known_valid_bsns(value: str) -> None:
    assert is_valid_bsn(value)


@pytest.mark.parametrize(
    "value", ["000000000", "999999991", "12345678", "1234567890", "99999999a", " 99999999", "", "9999 9999 0"]
)
def test_invalid_bsns(value: str) -> None:
    assert not is_valid_bsn(value)


@given(
    st.integers(1000, 9999), st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2), st.booleans(), st.booleans()
)
def test_postcodes_normalise_spaces_and_case(digits: int, letters: str, space: bool, lower: bool) -> None:
    written = f"{digits}{' ' if space else ''}{letters.lower() if lower else letters}"
    if letters in {"SA", "SD", "SS"}:
        with pytest.raises(ValueError, match="SA, SD and SS"):
            normalise_postcode(written)
    else:
        assert normalise_postcode(written) == f"{digits}{letters}"


@pytest.mark.parametrize(
    "value", ["0123AB", "123AB", "12345AB", "1011A", "1011ABC", "1011 SA", "1011sd", "1011-AB", "1011  AB", ""]
)
def test_invalid_postcodes(value: str) -> None:
    with pytest.raises(ValueError):
        normalise_postcode(value)


def test_postcode_error_does_not_repeat_the_value() -> None:
    with pytest.raises(ValueError) as info:
        normalise_postcode("9999ZZZ")
    assert "9999" not in str(info.value)


@pytest.mark.parametrize("value", ["GM0363", "GM0599", "GM1992"])
def test_gemeente_codes(value: str) -> None:
    assert validate_gemeente_code(value) == value


@pytest.mark.parametrize(("value", "normalised"), [("gm0363", "GM0363"), (" Gm0599 ", "GM0599")])
def test_gemeente_codes_are_normalised_like_postcodes(value: str, normalised: str) -> None:
    assert validate_gemeente_code(value) == normalised


@pytest.mark.parametrize("value", ["GM363", "GM03631", "0363", "GMABCD", "GM 0363"])
def test_invalid_gemeente_codes(value: str) -> None:
    with pytest.raises(ValueError):
        validate_gemeente_code(value)


def test_postcode_areas() -> None:
    assert validate_pc4("1011") == "1011"
    for bad in ("0999", "101", "10111"):
        with pytest.raises(ValueError):
            validate_pc4(bad)


def test_bsn_error_does_not_repeat_the_value() -> None:
    from shared.identifiers import validate_bsn

    with pytest.raises(ValueError) as info:
        validate_bsn("999999991")
    assert "999999991" not in str(info.value)


def test_sample_bsns_are_distinct_valid_and_repeatable() -> None:
    from shared.identifiers import sample_bsns

    sample = sample_bsns(500, seed=7)
    assert len(set(sample)) == 500 and all(is_valid_bsn(b) for b in sample)
    assert sample == sample_bsns(500, seed=7) and sample != sample_bsns(500, seed=8)
