"""Dutch identifiers: BSN, postcode, gemeente code, GGD region code — as functions and as pydantic field types.

Error messages never repeat the value: a BSN must not reach an error body or a log line.
"""

from __future__ import annotations

import random
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field
from stdnum.exceptions import ValidationError as StdnumValidationError
from stdnum.nl import bsn as stdnum_bsn

BSN_SYSTEM = "http://fhir.nl/fhir/NamingSystem/bsn"

_BSN_FORMAT = re.compile(r"^[0-9]{9}$")
_POSTCODE_FORMAT = re.compile(r"^([1-9][0-9]{3}) ?([A-Za-z]{2})$")
_POSTCODE_FORBIDDEN_LETTERS = frozenset({"SA", "SD", "SS"})
_GEMEENTE_FORMAT = re.compile(r"^GM[0-9]{4}$")
_GGD_REGION_FORMAT = re.compile(r"^GG[0-9]{4}$")
_PC4_FORMAT = re.compile(r"^[1-9][0-9]{3}$")


def is_valid_bsn(value: str) -> bool:
    """Nine digits, not all zero, passing the elfproef (weights 9..2, -1)."""
    if not isinstance(value, str) or not _BSN_FORMAT.fullmatch(value):
        return False
    try:
        stdnum_bsn.validate(value)
    except StdnumValidationError:
        return False
    return True


def sample_bsns(count: int, seed: int) -> list[str]:
    """`count` distinct valid BSNs (the elfproef), deterministic for a seed: test and benchmark patients."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < count:
        digits = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(7)]
        check = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
        if check < 10:
            out.add("".join(map(str, digits)) + str(check))
    return sorted(out)


def validate_bsn(value: str) -> str:
    if not is_valid_bsn(value):
        raise ValueError("not a valid BSN: 9 digits passing the elfproef")
    return value


def normalise_postcode(value: str) -> str:
    """`1011 ab` -> `1011AB`; raises ValueError for anything that is not a Dutch postcode."""
    match = _POSTCODE_FORMAT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError("not a valid postcode: 4 digits (first not 0) and 2 letters, e.g. 1011AB")
    letters = match.group(2).upper()
    if letters in _POSTCODE_FORBIDDEN_LETTERS:
        raise ValueError("not a valid postcode: the letters SA, SD and SS are not used")
    return match.group(1) + letters


def postcode_area(postcode: str) -> str:
    """The 4-digit area (PC4) of a normalised postcode."""
    return normalise_postcode(postcode)[:4]


def validate_pc4(value: str) -> str:
    if not isinstance(value, str) or not _PC4_FORMAT.fullmatch(value):
        raise ValueError("not a valid 4-digit postcode area (1000-9999)")
    return value


def validate_gemeente_code(value: str) -> str:
    """`gm0599` -> `GM0599` (normalised like a postcode); ValueError for anything that is not a CBS code."""
    normalised = value.strip().upper() if isinstance(value, str) else value
    if not isinstance(normalised, str) or not _GEMEENTE_FORMAT.fullmatch(normalised):
        raise ValueError("not a valid CBS gemeente code: GM followed by 4 digits, e.g. GM0363")
    return normalised


def validate_ggd_region_code(value: str) -> str:
    """`gg3406` -> `GG3406`; ValueError for anything that is not a CBS GGD region code."""
    normalised = value.strip().upper() if isinstance(value, str) else value
    if not isinstance(normalised, str) or not _GGD_REGION_FORMAT.fullmatch(normalised):
        raise ValueError("not a valid CBS GGD region code: GG followed by 4 digits, e.g. GG3406")
    return normalised


# The patterns are documented in the OpenAPI (what a client or a fuzzer generates from) and enforced by the
# validators, which say in their own words what is wrong (a BSN's elfproef, a postcode's SA/SD/SS).
Bsn = Annotated[
    str,
    AfterValidator(validate_bsn),
    Field(
        examples=["999999990"],
        description="BSN: 9 digits passing the elfproef (test BSNs such as 999999990)",
        json_schema_extra={"pattern": _BSN_FORMAT.pattern},
    ),
]
Postcode = Annotated[
    str,
    BeforeValidator(normalise_postcode),
    Field(
        examples=["1011AB"],
        description="Dutch postcode: 4 digits (first not 0) and 2 letters, not SA, SD or SS; "
        "a space and lower case are accepted and normalised",
        json_schema_extra={"pattern": _POSTCODE_FORMAT.pattern},
    ),
]
GemeenteCode = Annotated[
    str,
    BeforeValidator(validate_gemeente_code),
    Field(
        examples=["GM0363"],
        description="CBS gemeente code (`gm0363` is read as `GM0363`)",
        json_schema_extra={"pattern": "^[Gg][Mm][0-9]{4}$"},
    ),
]
GgdRegionCode = Annotated[
    str,
    BeforeValidator(validate_ggd_region_code),
    Field(
        examples=["GG3406"],
        description="CBS GGD region code (`gg3406` is read as `GG3406`)",
        json_schema_extra={"pattern": "^[Gg][Gg][0-9]{4}$"},
    ),
]
PostcodeArea = Annotated[
    str,
    AfterValidator(validate_pc4),
    Field(
        examples=["1011"], description="4-digit postcode area (PC4)", json_schema_extra={"pattern": _PC4_FORMAT.pattern}
    ),
]


# Ids the platform gives out (consents, meldingen, deliveries, dead letters) are UUIDs; organisation ids
# are URA numbers or short names of letters, digits and `._-` (a token's `org_id` claim has the same form).
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
ORG_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"

ResourceId = Annotated[
    str, Field(pattern=UUID_PATTERN, max_length=36, examples=["6f0c1c1e-2d7a-4f7e-9c1e-0d7f3b2a9e10"])
]
OrgId = Annotated[str, Field(pattern=ORG_ID_PATTERN, max_length=64, examples=["12345678"])]
