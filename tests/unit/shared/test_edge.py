"""The edge's decisions (shared.edge): how deep a JSON text nests, and how many expensive requests each
organisation has running."""

from __future__ import annotations

import pytest

from shared.edge import OrganisationLimits, TooManyRequests, json_depth


def test_json_depth_counts_arrays_and_objects_but_not_brackets_in_strings() -> None:
    assert json_depth(b"") == 0
    assert json_depth(b"[]") == 1
    assert json_depth(b'[{"a": [[]]}]') == 4
    assert json_depth(b'["]]]]", "\\\\", "\\"[[[[[", {}]') == 2
    assert json_depth(b"[" * 1000) == 1000  # unbalanced: counted all the same; the parser refuses it after


def test_an_organisation_holds_at_most_its_share_of_slots_and_gets_them_back() -> None:
    limits = OrganisationLimits(2)
    with limits.slot("/fhir", "A"), limits.slot("/fhir", "A"):
        assert limits.running("/fhir", "A") == 2
        with pytest.raises(TooManyRequests):
            with limits.slot("/fhir", "A"):
                pass
        assert limits.running("/fhir", "A") == 2  # the refused one took none
        with limits.slot("/fhir", "B"), limits.slot("/fhir/Task", "A"):  # another organisation, another kind
            assert limits.running("/fhir", "B") == limits.running("/fhir/Task", "A") == 1
    assert limits.running("/fhir", "A") == 0


def test_a_slot_is_given_back_when_the_request_fails() -> None:
    limits = OrganisationLimits(1)
    with pytest.raises(RuntimeError), limits.slot("/fhir", "A"):
        raise RuntimeError("the route failed")
    with limits.slot("/fhir", "A"):
        assert limits.running("/fhir", "A") == 1
