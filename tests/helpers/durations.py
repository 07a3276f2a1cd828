"""Writes ``tests/durations.json`` (worker-seconds per test file) from a pytest JUnit XML.

    python -m pytest -n auto --dist loadfile --junitxml=/tmp/run.xml tests
    python -m tests.helpers.durations /tmp/run.xml

``tests/conftest.py`` orders the files by these numbers, heaviest first, so that the
long files start at once on ``make test``'s workers and the short ones fill the tail.
"""

import collections
import json
import os
import sys
import xml.etree.ElementTree as ET

OUT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "durations.json")


def file_seconds(junit_xml: str) -> dict[str, float]:
  """``{'tests/x/test_y.py': seconds}``: each file's test times (setup and teardown in)."""
  seconds: collections.Counter = collections.Counter()
  for case in ET.parse(junit_xml).iter("testcase"):
    parts = [p for p in case.get("classname", "").split(".") if not p[:1].isupper()]
    seconds["/".join(parts) + ".py"] += float(case.get("time", 0))
  return {path: round(s, 1) for path, s in seconds.most_common()}


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    sys.exit("usage: python -m tests.helpers.durations RUN.xml")
  with open(OUT, "w") as f:
    json.dump(file_seconds(argv[1]), f, indent=0)
    f.write("\n")
  print(f"wrote {OUT}")


if __name__ == "__main__":
  main(sys.argv)
