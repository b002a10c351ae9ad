"""README stays true: the configuration reference in it is the one the typed config generates."""
from pathlib import Path

from hardmine.config import reference_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_readme_config_reference_is_current():
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
    block = readme[readme.index(start) + len(start) : readme.index(end)].strip()
    assert block == reference_markdown().strip(), "run: python -m tests.test_readme to refresh README.md"


def test_readme_two_commands_and_ci_agree():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def refresh() -> None:
    path = ROOT / "README.md"
    text = path.read_text()
    start, end = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
    text = text[: text.index(start) + len(start)] + "\n" + reference_markdown().strip() + "\n" + text[text.index(end) :]
    path.write_text(text)


if __name__ == "__main__":
    refresh()
