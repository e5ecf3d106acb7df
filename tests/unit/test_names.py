import pytest

from mr.models.names import (InvalidNameError, check_name, check_workflow_name,
                             normalize_capability, topic_name)


@pytest.mark.parametrize("name", ["a", "wordcount", "step_1", "Job-2", "0start"])
def test_valid_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name, reason", [
    ("", "must not be empty"), ("a b", "may contain only"), ("a.b", "may contain only"),
    ("a/b", "may contain only"), ("_hidden", "must start with"), ("-x", "must start with"),
    ("x" * 129, "longer than 128"), (None, "must be a string"), ("naïve", "may contain only"),
])
def test_invalid_names_say_why(name, reason):
    with pytest.raises(InvalidNameError, match=reason):
        check_name(name)


def test_workflow_names_are_short_enough_for_every_topic():
    check_workflow_name("w" * 24)
    with pytest.raises(InvalidNameError, match="longer than 24"):
        check_workflow_name("w" * 25)
    longest = topic_name("w" * 24, "reduce", "c" * 24)
    assert len(longest) <= 64  # nsqd's limit on topic names


@pytest.mark.parametrize("given, normalized", [
    (None, "general"), ("", "general"), ("none", "general"), ("NONE", "general"),
    ("GPU", "gpu"), ("gpu", "gpu"),
])
def test_capabilities_normalize_identically(given, normalized):
    assert normalize_capability(given) == normalized


def test_a_name_that_is_no_string_is_refused_naming_its_type():
    with pytest.raises(InvalidNameError, match="^workflow name must be a string, got int$"):
        check_workflow_name(7)


def test_a_capability_that_is_no_name_is_refused_as_a_capability():
    with pytest.raises(InvalidNameError, match="^capability 'g p u' may contain only "):
        normalize_capability("g p u")


def test_topic_names_are_normalized_and_checked():
    assert topic_name("wf", "map", "GPU") == "mr.wf.map.gpu"
    with pytest.raises(ValueError):
        topic_name("wf", "sideways", "general")
    with pytest.raises(InvalidNameError):
        topic_name("w.f", "map", "general")
