"""The generator: committed output is exactly what the spec produces, naming rules, parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol import generate, messages
from protocol.generate import parse_default, parse_versions, snake_case, strip_comments

MESSAGES_DIR = Path(messages.__file__).parent


def test_spec_folder_is_present() -> None:
    """CI has ../shared beside the clone; without it the regeneration check cannot run."""
    assert generate.DEFAULT_SPEC_DIRS[0].is_dir(), (
        f"Kafka spec folder missing: {generate.DEFAULT_SPEC_DIRS[0]}"
    )


def test_regenerating_gives_the_committed_output() -> None:
    spec_dir = generate.DEFAULT_SPEC_DIRS[0]
    assert spec_dir.is_dir(), f"Kafka spec folder missing: {spec_dir}"
    files = generate.generate(list(generate.DEFAULT_SPEC_DIRS))
    committed = {p.name: p.read_text(encoding="utf-8") for p in MESSAGES_DIR.glob("*.py")}
    assert sorted(files) == sorted(committed), "run: python -m protocol.generate"
    for name, source in files.items():
        assert committed[name] == source, f"{name} is stale; run: python -m protocol.generate"


def test_generation_is_deterministic() -> None:
    dirs = list(generate.DEFAULT_SPEC_DIRS)
    assert generate.generate(dirs) == generate.generate(dirs)


def test_command_line_writes_a_package(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "FooRequest.json").write_text(
        '// comment\n{ "apiKey": 900, "type": "request", "name": "FooRequest",\n'
        '  "validVersions": "0-1", "flexibleVersions": "1+",\n'
        '  "fields": [ { "name": "TopicId", "type": "uuid", "versions": "0+",'
        ' "about": "see http://x//y" } ] }\n'
    )
    (spec / "FooResponse.json").write_text(
        '{ "apiKey": 900, "type": "response", "name": "FooResponse",\n'
        '  "validVersions": "0-1", "flexibleVersions": "1+", "fields": [] }\n'
    )
    (spec / "BarRecord.json").write_text(
        '{ "apiKey": 3, "type": "metadata", "name": "BarRecord", "validVersions": "0",\n'
        '  "flexibleVersions": "0+", "fields": [] }\n'
    )
    out = tmp_path / "out"
    assert generate.main([str(spec), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.py")) == ["__init__.py", "bar_record.py", "foo.py"]
    source = (out / "foo.py").read_text()
    assert "F('topic_id', 'uuid', (0, None))" in source
    assert "http" not in source and "comment" not in source  # no spec text copied
    index = (out / "__init__.py").read_text()
    assert "900: 'foo'" in index and "'metadata': {" in index


def test_missing_spec_folder_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        generate.main([str(tmp_path / "nope"), "--out", str(tmp_path / "out")])


@pytest.mark.parametrize(
    "name, expected",
    [
        ("ThrottleTimeMs", "throttle_time_ms"),
        ("TopicId", "topic_id"),
        ("IsrNodes", "isr_nodes"),
        ("ApiKeys", "api_keys"),
        ("KRaftVersion", "k_raft_version"),
        ("isKRaftController", "is_k_raft_controller"),
        ("ErrorCode", "error_code"),
        ("Topics", "topics"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def test_strip_comments_keeps_slashes_in_strings() -> None:
    text = '{ "a": "x // y", // gone\n "b": "\\"//" }'
    assert strip_comments(text) == '{ "a": "x // y", \n "b": "\\"//" }'


@pytest.mark.parametrize(
    "text, expected",
    [("0+", (0, None)), ("3-5", (3, 5)), ("4", (4, 4)), ("none", None), ("", None)],
)
def test_parse_versions(text: str, expected: object) -> None:
    assert parse_versions(text) == expected


@pytest.mark.parametrize(
    "raw, type_name, expected",
    [
        ("null", "string", None),
        ("-1", "int32", -1),
        ("0x7fffffff", "int32", 2147483647),
        ("-2147483648", "int32", -2147483648),
        ("false", "bool", False),
        ("true", "bool", True),
        (False, "bool", False),
        (-2, "int64", -2),
        ("", "string", ""),
    ],
)
def test_parse_default(raw: object, type_name: str, expected: object) -> None:
    assert parse_default(raw, type_name, False) == expected
