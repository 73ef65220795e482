"""The README and the docs pages: every link resolves, and no picture is on two pages.

A relative link must name a file that exists (from the page's folder); a link with
``#anchor`` must name a heading of that page, by GitHub's rule (lower case, spaces to
hyphens, punctuation other than hyphens and underscores dropped). Links to the web are
not followed."""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path):
    """The #anchors of a markdown file's headings (code blocks skipped)."""
    out, in_code = set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#{1,6} ", line):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def links(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return LINK.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_link_resolves_to_a_file_or_heading(page):
    bad = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = os.path.normpath(os.path.join(os.path.dirname(page), file)) if file else page
        if not os.path.exists(path):
            bad.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(path):
            bad.append(f"{target}: no such heading in {os.path.relpath(path, ROOT)}")
    assert not bad, bad


def test_no_picture_is_shown_on_two_pages():
    shown = {}
    for page in PAGES:
        for target in links(page):
            if target.endswith(".png"):
                pic = os.path.normpath(os.path.join(os.path.dirname(page), target))
                shown.setdefault(pic, set()).add(os.path.relpath(page, ROOT))
    twice = {os.path.relpath(k, ROOT): v for k, v in shown.items() if len(v) > 1}
    assert not twice, twice


def test_the_link_check_catches_a_broken_link_and_anchor(tmp_path):
    """Test the test: a page linking to a missing file and a missing heading fails."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[a](missing.md) [b](#no-such) [c](#title)\n")
    found = [t for t in links(str(page))]
    assert found == ["missing.md", "#no-such", "#title"]
    assert "title" in anchors(str(page)) and "no-such" not in anchors(str(page))
