"""Versions are MLflow's canonical form or refused, with a reason."""
import pytest

from controller.registry.versions import MAX_VERSION_DIGITS, VersionError, canonical_version


@pytest.mark.parametrize("raw, expected", [("1", "1"), ("42", "42"), (7, "7"), ("9" * MAX_VERSION_DIGITS, "9" * 9)])
def test_canonical_versions_pass_unchanged(raw, expected):
    assert canonical_version(raw) == expected


@pytest.mark.parametrize("raw, fragment", [
    ("01", "without leading zeros"),
    ("0", "positive integer"),
    ("-1", "positive integer"),
    ("\u0661", "ASCII digits"),            # ARABIC-INDIC DIGIT ONE
    ("\uff11", "ASCII digits"),            # FULLWIDTH DIGIT ONE
    ("1\n", "positive integer"),
    (" 1", "positive integer"),
    ("1.0", "positive integer"),
    ("", "positive integer"),
    ("1" * 5000, "5000 digits"),
    (True, "got bool"),
    (None, "got NoneType"),
    (0, "positive integer"),
])
def test_other_spellings_are_refused(raw, fragment):
    with pytest.raises(VersionError) as err:
        canonical_version(raw)
    assert fragment in str(err.value)
    assert len(str(err.value)) < 200       # a huge input is never echoed whole


def test_version_error_is_a_value_error():
    assert issubclass(VersionError, ValueError)
