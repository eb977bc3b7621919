"""Policy files read defensively: size, aliases, duplicates, encodings, line numbers;
policies from API callers are names or mappings, never paths."""
import time

import pytest

from policies.loader import (POLICY_DIR_ENV, PolicyError, load_policy, policy_from_request,
                             watch_policy_ref)
from policies.yaml_guard import MAX_POLICY_BYTES

LAUGHS = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"]
                   + [f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]" for p, c in zip("abcdefgh", "bcdefghi")])


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_billion_laughs_fails_fast_with_a_clear_error(tmp_path):
    assert len(LAUGHS) < 600
    started = time.perf_counter()
    with pytest.raises(PolicyError, match="aliases expand to more than"):
        load_policy(write(tmp_path, LAUGHS))
    assert time.perf_counter() - started < 1.0


def test_honest_anchors_still_work(tmp_path):
    path = write(tmp_path, "name: anchored\nshadow: &s {duration_seconds: 5}\n"
                           "canary: {steps: [5, 50], step_seconds: 5}\n")
    assert load_policy(path).shadow.duration_seconds == 5


@pytest.mark.parametrize("text, fragment", [
    ("a: &a [*a]\n", "refers to itself"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("items: [" + ", ".join(["&x 1"] + ["*x"] * 150) + "]\n", "more than 100 YAML aliases"),
])
def test_hostile_structures_are_refused(tmp_path, text, fragment):
    with pytest.raises(PolicyError, match=fragment):
        load_policy(write(tmp_path, text))


def test_size_cap(tmp_path):
    path = write(tmp_path, "name: big\n" + "#" * MAX_POLICY_BYTES + "\n")
    with pytest.raises(PolicyError, match="larger than 64 KiB"):
        load_policy(path)


@pytest.mark.parametrize("text, fragment", [
    ("name: x\nshadow:\n  duration_seconds: 5\n  duration_seconds: 6\n",
     "line 4: duplicate key 'duration_seconds' (first at line 3)"),
    ("", "empty"),
    ("# only a comment\n", "empty"),
    ("---\n...\n", "empty"),
    (b"name: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 9)"),
    ("name: a\n---\nname: b\n", "line 2"),
])
def test_file_mistakes_are_named(tmp_path, text, fragment):
    with pytest.raises(PolicyError) as err:
        load_policy(write(tmp_path, text))
    assert fragment in str(err.value)


@pytest.mark.parametrize("text, field, line", [
    ("name: x\nshadow:\n  duration_seconds: yes\n", "shadow.duration_seconds", 3),
    ("name: x\ncanary:\n  steps: [5, 50]\n  step_seconds: .inf\n", "canary.step_seconds", 4),
    ("name: x\ndeploy_timeout_seconds: .nan\n", "deploy_timeout_seconds", 2),
    ("name: x\ndeploy_timeout_seconds: 1e300\n", "deploy_timeout_seconds", 2),
    ("name: x\nquantize:\n  timeout_seconds: true\n", "quantize.timeout_seconds", 3),
    ("name: x\ncanary:\n  steps:\n    - 50\n    - 10\n", "canary.steps", 3),
])
def test_durations_are_finite_numbers_and_errors_carry_line_numbers(tmp_path, text, field, line):
    with pytest.raises(PolicyError) as err:
        load_policy(write(tmp_path, text))
    assert f"{field} (line {line})" in str(err.value)


def test_syntax_errors_give_the_line_but_not_the_text(tmp_path):
    secret_line = "password: hunter2 ["
    with pytest.raises(PolicyError) as err:
        load_policy(write(tmp_path, f"name: x\n{secret_line}\n"))
    assert "line 3" in str(err.value) or "line 2" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_requests_name_a_policy_or_send_one_never_a_path(tmp_path, monkeypatch):
    target = write(tmp_path, "name: mine\nshadow: {duration_seconds: 1}\n", "mine.yaml")
    for ref in (str(target), "../../etc/passwd", "/etc/hostname", "mine.yaml", "default\n"):
        with pytest.raises(PolicyError) as err:
            policy_from_request(ref)
        assert "file paths are not accepted" in str(err.value)
    with pytest.raises(PolicyError, match="unknown policy 'mine'"):
        policy_from_request("mine")
    monkeypatch.setenv(POLICY_DIR_ENV, str(tmp_path))
    assert policy_from_request("mine").name == "mine"          # configured by the operator
    assert policy_from_request("demo").name == "demo"          # built-in
    assert policy_from_request(None).name == "default"
    assert policy_from_request({"name": "inline"}).name == "inline"


def test_request_errors_for_configured_files_do_not_quote_them(tmp_path, monkeypatch):
    write(tmp_path, "name: broken\ntoken: s3cr3t-value [\n", "broken.yaml")
    monkeypatch.setenv(POLICY_DIR_ENV, str(tmp_path))
    with pytest.raises(PolicyError) as err:
        policy_from_request("broken")
    assert "s3cr3t" not in str(err.value) and str(tmp_path) not in str(err.value)


def test_watch_specs_keep_reading_operator_files(tmp_path):
    path = write(tmp_path, "name: watched\n")
    assert load_policy(watch_policy_ref(str(path))).name == "watched"
    assert watch_policy_ref("demo") == "demo"


@pytest.mark.parametrize("section, field, value", [
    ("analysis", "max_inconclusive_seconds", "yes"),
    ("analysis", "max_inconclusive_seconds", ".inf"),
    ("analysis", "min_soak_seconds", "-.inf"),
    ("analysis", "settle_seconds", ".nan"),
    ("analysis", "max_window_seconds", "'60'"),
    ("analysis", "max_hold_seconds", "on"),
    ("analysis", "health_window_seconds", "1e300"),
    ("evaluation", "timeout_seconds", "true"),
    ("evaluation", "interval_seconds", ".inf"),
])
def test_every_duration_refuses_booleans_strings_and_non_finite_values(tmp_path, section, field, value):
    with pytest.raises(PolicyError) as err:
        load_policy(write(tmp_path, f"name: x\n{section}:\n  {field}: {value}\n"))
    assert f"{section}.{field} (line 3)" in str(err.value)


def test_slo_latency_bound_is_a_finite_number(tmp_path):
    text = "name: x\nanalysis:\n  slo:\n    - {metric: e2e, quantile: 0.99, max_seconds: yes}\n"
    with pytest.raises(PolicyError, match="max_seconds"):
        load_policy(write(tmp_path, text))


def test_numeric_durations_still_load(tmp_path):
    text = "name: x\nanalysis:\n  max_inconclusive_seconds: 45\n  settle_seconds: 0\n  min_soak_seconds: 2.5\n"
    policy = load_policy(write(tmp_path, text))
    assert (policy.analysis.max_inconclusive_seconds, policy.analysis.settle_seconds) == (45, 0)
    assert policy.analysis.min_soak_seconds == 2.5
