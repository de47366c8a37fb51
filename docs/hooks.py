"""mkdocs hooks (mkdocs.yml): the site's home page is the README, and the runnable examples are
pages of their own, so the repository's links between them work on the site too."""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("esimclr", "care")


def readme_as_home(text: str) -> str:
    """The README with its links made relative to docs/ (`docs/guide.md` -> `guide.md`)."""
    text = re.sub(r"\]\(docs/", "](", text)
    return re.sub(r"\]\(examples/(\w+)\.py\)", r"](examples/\1.md)", text)


def example_page(name: str) -> str:
    """A page with the source of examples/<name>.py."""
    source = (ROOT / "examples" / f"{name}.py").read_text(encoding="utf-8")
    return f"# examples/{name}.py\n\n```python\n{source}```\n"


def on_files(files: Files, config) -> Files:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "index.md", content=readme_as_home(readme)))
    for name in EXAMPLES:
        files.append(File.generated(config, f"examples/{name}.md", content=example_page(name)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    # docs/*.md link the examples as ../examples/<name>.py (right on GitHub): their pages here
    return re.sub(r"\]\(\.\./examples/(\w+)\.py\)", r"](examples/\1.md)", markdown)
