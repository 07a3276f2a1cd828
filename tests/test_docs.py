"""The documentation's shape: a short README, no reference outside the repository, no dead link.

The site itself is built by ``make docs`` (MkDocs, strict); these checks need no MkDocs and
run in well under a second.
"""

import os
import re
import subprocess
import unicodedata

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_MAX_LINES = 250
# Notes that lived outside the repository; written split so that this file does not name them.
OUTSIDE_NAMES = ("methods" ".md", "platform" ".md", "../" "shared")

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"`[^`]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_links(text: str) -> list[str]:
  """Targets of the inline links and images of ``text``, outside code blocks and code spans."""
  targets, in_fence = [], False
  for line in text.splitlines():
    if _FENCE.match(line):
      in_fence = not in_fence
      continue
    if not in_fence:
      targets += _LINK.findall(_CODE_SPAN.sub("", line))
  return targets


def slug(heading: str) -> str:
  """The anchor MkDocs (Python-Markdown's toc) gives a heading; GitHub agrees on plain ones."""
  text = re.sub(r"[`*_]", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading))
  text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
  text = re.sub(r"[^\w\s-]", "", text).strip().lower()
  return re.sub(r"[-\s]+", "-", text)


def anchors(path: str) -> set[str]:
  found, in_fence = set(), False
  with open(path, encoding="utf-8") as f:
    for line in f:
      if _FENCE.match(line):
        in_fence = not in_fence
      elif not in_fence and (m := _HEADING.match(line)):
        found.add(slug(m.group(2)))
  return found


def documentation_files() -> list[str]:
  out = [os.path.join(ROOT, "README.md")]
  for dirpath, _, files in os.walk(os.path.join(ROOT, "docs")):
    out += [os.path.join(dirpath, f) for f in sorted(files) if f.endswith(".md")]
  return out


def dead_links(path: str) -> list[str]:
  """``target`` of every relative link of ``path`` whose file or heading does not exist."""
  with open(path, encoding="utf-8") as f:
    targets = markdown_links(f.read())
  dead = []
  for target in targets:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
      continue
    file_part, _, anchor = target.partition("#")
    resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part \
        else path
    if not os.path.exists(resolved):
      dead.append(target)
    elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
      dead.append(target)
  return dead


def test_markdown_links_skip_code_and_keep_images_and_anchors():
  text = ("See [a](docs/a.md) and ![plot](p.png \"title\"), `[not](x.md)`.\n"
          "```\n[neither](y.md)\n```\n[b](docs/b.md#part) [web](https://example.org)\n")
  assert markdown_links(text) == ["docs/a.md", "p.png", "docs/b.md#part", "https://example.org"]


def test_slugs_of_headings():
  assert slug("Which figures depend on the machine") == "which-figures-depend-on-the-machine"
  assert slug("SPSA-GC") == "spsa-gc"
  assert slug("Image track: what the demo runs") == "image-track-what-the-demo-runs"
  assert slug("8-bit wire") == "8-bit-wire"


def test_readme_is_a_front_door_of_at_most_250_lines():
  with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def test_no_tracked_file_refers_to_notes_outside_the_repository():
  try:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    pytest.skip("not a git checkout")
  offenders = []
  for rel in filter(None, listed.decode().split("\0")):
    path = os.path.join(ROOT, rel)
    if not os.path.isfile(path):
      continue
    with open(path, "rb") as f:
      data = f.read()
    offenders += [f"{rel}: {name}" for name in OUTSIDE_NAMES if name.encode() in data]
  assert offenders == []


def test_every_relative_link_of_the_readme_and_docs_exists():
  files = documentation_files()
  assert len(files) > 30  # README and the docs pages were found
  dead = {os.path.relpath(p, ROOT): d for p in files if (d := dead_links(p))}
  assert dead == {}
