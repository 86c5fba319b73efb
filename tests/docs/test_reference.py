"""docs/reference/ is what ``python -m tools.cli_reference`` generates from the parsers and
experiments/base.yaml, and docs/README.md indexes every doc: a changed option, default or
comment, or a new doc left out of the index, fails here."""

import re
from pathlib import Path

import yaml

from tools import cli_reference

REPO = Path(__file__).resolve().parents[2]


def flat_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        keys.append(prefix + key)
        if isinstance(value, dict) and value:
            keys += flat_keys(value, f"{prefix}{key}.")
    return keys


def test_committed_reference_is_current():
    for path, text in cli_reference.outputs().items():
        rel = path.relative_to(REPO)
        assert path.exists(), f"{rel} is missing: run python -m tools.cli_reference"
        assert path.read_text() == text, f"{rel} is stale: run python -m tools.cli_reference"


def test_check_names_a_stale_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_reference, "OUT", tmp_path)
    assert cli_reference.main(["--check"]) == 1
    assert "cli.md is stale" in capsys.readouterr().err
    assert cli_reference.main([]) == 0 and cli_reference.main(["--check"]) == 0


def test_config_reference_has_every_key_of_base_yaml():
    text = cli_reference.BASE.read_text()
    rows = [key for key, _, _ in cli_reference.config_rows(text)]
    assert rows == flat_keys(yaml.safe_load(text))
    assert all(comment for _, _, comment in cli_reference.config_rows(text)), (
        "a key without meaning"
    )


def test_config_rows_read_values_comments_and_nesting():
    text = 'a: "x # y"   # the # in quotes is the value\nb:   # section\n  c: [1, 2] # list\n'
    assert cli_reference.config_rows(text) == [
        ("a", '"x # y"', "the # in quotes is the value"),
        ("b", "", "section"),
        ("b.c", "[1, 2]", "list"),
    ]


def test_cli_reference_lists_every_option():
    text = (REPO / "docs" / "reference" / "cli.md").read_text()
    for name, make in cli_reference.COMMANDS.items():
        assert f"## {name}\n" in text
        for action in make()._actions:
            for option in action.option_strings:
                assert option in text, f"{name} {option}"


def test_docs_index_links_every_doc():
    index = (REPO / "docs" / "README.md").read_text()
    linked = set(re.findall(r"\]\(([\w/.-]+\.md)(?:#[^)]*)?\)", index))
    docs = {p.relative_to(REPO / "docs").as_posix() for p in (REPO / "docs").rglob("*.md")}
    assert docs - {"README.md"} <= linked, f"not in docs/README.md: {docs - linked - {'README.md'}}"
