"""The documentation a user reads: the flag reference matches the parser, and the README's links lead somewhere."""

import re
from pathlib import Path

from aocr.cli.reference import markdown

ROOT = Path(__file__).resolve().parent.parent


def test_the_flag_reference_lists_every_flag_as_the_parser_has_it():
    written = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    assert written == markdown(), "regenerate it: python -m aocr.cli.reference docs/reference/cli.md"
    assert "`--cnn`" in written and "`--max-image-pixels`" in written


def test_the_readme_links_to_files_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [target for target in re.findall(r"\]\(([^)#\s]+)", readme) if "://" not in target]
    assert targets
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert not missing, missing
