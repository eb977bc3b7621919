"""Policy files: built-ins load, mistakes get errors that name the field."""
import pytest

from policies.loader import PolicyError, builtin_names, load_policy, parse_policy


def test_builtins_load():
    assert {"default", "demo"} <= set(builtin_names())
    for name in builtin_names():
        assert load_policy(name).name == name


def test_defaults_are_safe():
    p = load_policy("default")
    assert p.quality.max_accuracy_drop_pct == 1.2
    assert p.analysis.alpha == 0.05
    assert p.canary.steps == sorted(p.canary.steps)


@pytest.mark.parametrize("raw, fragment", [
    ({"canary": {"steps": [50, 10]}}, "canary.steps"),
    ({"canary": {"steps": [0, 10]}}, "strictly between 0 and 100"),
    ({"canary": {"steps": []}}, "at least one canary step"),
    ({"shadow": {"duration_seconds": -1}}, "shadow.duration_seconds"),
    ({"canary": {"step_secs": 10}}, "canary.step_secs"),          # typo: unknown key
    ({"quality": {"max_accuracy_drop_pct": "lots"}}, "quality.max_accuracy_drop_pct"),
    ({"analysis": {"alpha": 2}}, "analysis.alpha"),
])
def test_invalid_policy_names_the_field(raw, fragment):
    with pytest.raises(PolicyError) as err:
        parse_policy(raw, source="bad.yaml")
    assert "bad.yaml" in str(err.value) and fragment in str(err.value)


def test_file_errors(tmp_path):
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("canary: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42")
    with pytest.raises(PolicyError, match="mapping"):
        load_policy(scalar)
    with pytest.raises(PolicyError, match="unknown policy 'nope'"):
        load_policy("nope")


def test_validators_are_checked_when_the_policy_loads():
    ok = parse_policy({"validators": [{"type": "json_schema", "required": ["amount", "currency"]},
                                      {"type": "regex", "pattern": "^[A-Z]"}]})
    assert len(ok.validators) == 2
    with pytest.raises(PolicyError, match="validators"):
        parse_policy({"validators": [{"type": "regex", "pattern": "("}]})
