"""The README and the docs site's home page say the same thing; the README stays a five-minute read."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_home_page_is_the_readme_with_site_links():
    readme = (ROOT / "README.md").read_text()
    assert (ROOT / "docs" / "index.md").read_text() == readme.replace("](docs/", "](")


def test_the_readme_is_short_and_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    commands = [line.split("#")[0].strip() for line in lines if line.startswith("make ")]
    assert commands[:2] == ["make demo", "make test"]
