"""The package's shape: no import cycles, layers import downward only, train/ names no family."""

import ast
import os
import re

import fedbbpt_jax

PACKAGE = "fedbbpt_jax"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)
# Lower numbers are lower layers; a module may import its own layer or lower ones.
LAYERS = fedbbpt_jax.LAYERS
FAMILIES = ("image", "text", "glue", "instruction")


def _modules():
  out = {}
  for dirpath, _, files in os.walk(ROOT):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(dirpath, f)
        rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
        out[rel.removesuffix(".__init__")] = path
  return out


def _imports(path, modules):
  """Package modules ``path`` imports (anywhere in the file), resolved to module names."""
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
      for alias in node.names:  # ``from pkg import submodule`` imports the submodule
        sub = f"{node.module}.{alias.name}"
        found.add(sub if sub in modules else node.module)
    elif isinstance(node, ast.Import):
      found.update(a.name for a in node.names if a.name.startswith(PACKAGE))
  return {m for m in found if m in modules}


def _graph():
  modules = _modules()
  return {m: _imports(p, modules) for m, p in modules.items()}


def test_no_import_cycles():
  graph = _graph()
  # A package's __init__ re-exporting its submodules is not a cycle: drop edges from a
  # module to the packages that contain it.
  edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
  state, stack, cycles = {}, [], []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for t in edges[m]:
      if state.get(t) == "open":
        cycles.append(stack[stack.index(t):] + [t])
      elif t not in state:
        visit(t)
    stack.pop()
    state[m] = "done"

  for m in sorted(edges):
    if m not in state:
      visit(m)
  assert not cycles, cycles


def test_layers_import_downward_only():
  bad = []
  for m, targets in _graph().items():
    parts = m.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
      continue
    for t in targets:
      tp = t.split(".")
      if len(tp) > 1 and tp[1] in LAYERS and tp[1] != parts[1] \
          and LAYERS[tp[1]] >= LAYERS[parts[1]]:
        bad.append(f"{m} -> {t}")
  assert not bad, bad


def test_no_module_outside_a_family_package_names_a_family():
  """Only ``tasks/<family>/`` knows its family; ``tasks/__init__`` merely imports them."""
  names = "|".join(FAMILIES)
  pattern = re.compile(r"(tasks\.(%s)\b|task\.family\s*(==|!=|in\b)|[!=]=\s*[\"'](%s)[\"'])"
                       % (names, names))
  bad = []
  for m, path in _modules().items():
    if m == f"{PACKAGE}.tasks" or any(m.startswith(f"{PACKAGE}.tasks.{f}") for f in FAMILIES):
      continue
    for i, line in enumerate(open(path), 1):
      if pattern.search(line):
        bad.append(f"{path}:{i}: {line.strip()}")
  assert not bad, bad


def test_no_six_line_block_repeats_between_family_packages():
  """What two families share belongs in ``tasks/`` (scoring, evaluation) or ``data/``."""
  window = 6
  seen = {}
  repeated = []
  for m, path in sorted(_modules().items()):
    family = next((f for f in FAMILIES if m.startswith(f"{PACKAGE}.tasks.{f}")), None)
    if family is None:
      continue
    lines = [ln.strip() for ln in open(path)]
    lines = [ln for ln in lines
             if ln and not ln.startswith(("#", "import ", "from ", "PyTree = "))]
    for i in range(len(lines) - window + 1):
      block = "\n".join(lines[i:i + window])
      other = seen.setdefault(block, (family, path))
      if other[0] != family:
        repeated.append(f"{other[1]} ~ {path}:\n{block}")
  assert not repeated, repeated[:3]


def test_every_subpackage_has_a_layer_and_the_design_page_states_the_same_order():
  packages = {d for d in os.listdir(ROOT)
              if os.path.isfile(os.path.join(ROOT, d, "__init__.py"))}
  assert packages == set(LAYERS), packages ^ set(LAYERS)
  design = open(os.path.join(os.path.dirname(ROOT), "docs", "design.md")).read()
  table = dict(re.findall(r"^\| (\d) \| (.+) \|$", design, re.MULTILINE))
  stated = {name: int(layer) for layer, names in table.items()
            for name in re.findall(r"`(\w+)`", names)}
  assert stated == LAYERS


def _function(path, name):
  tree = ast.parse(open(path).read())
  return next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)


def _called_names(node):
  return {c.func.id if isinstance(c.func, ast.Name) else getattr(c.func, "attr", None)
          for c in ast.walk(node) if isinstance(c, ast.Call)}


# Every kind of run, and the function that starts it.
RUN_ENTRY_POINTS = {"simulation": (f"{PACKAGE}.train.simulation", "run"),
                    "vmapped sweep": (f"{PACKAGE}.train.vmapped_sweep", "run_vmapped"),
                    "Flower deployment": (f"{PACKAGE}.flower.server_app", "run_deployment")}


def test_every_kind_of_run_goes_through_the_one_driver():
  modules = _modules()
  for kind, (module, name) in RUN_ENTRY_POINTS.items():
    assert "drive" in _called_names(_function(modules[module], name)), (kind, module, name)
  # ... and nothing else keeps a round loop's records: only the driver makes RunRecords.
  makers = sorted(m for m, path in modules.items()
                  if "RunRecords" in _called_names(ast.parse(open(path).read())))
  assert makers == [f"{PACKAGE}.train.driver"], makers
  # The instruction searches are algorithms of the instruction family (run by ``train.run``
  # like any other), not a loop of their own: no module of the family drives rounds.
  from fedbbpt_jax.federated import server_algorithm_names  # pylint: disable=import-outside-toplevel
  assert {"fed_bo", "centralized_bo", "fedbbpt"} <= set(server_algorithm_names())
  family = [m for m in modules if m.startswith(f"{PACKAGE}.tasks.instruction")]
  assert family and not [m for m in family if "search" in m or "experiment" in m], family


def test_no_module_outside_train_writes_metrics_rows():
  """``metrics.jsonl`` is named (outside docstrings) and ``MetricsLog`` used only in train/."""
  bad = []
  for m, path in _modules().items():
    if m.startswith(f"{PACKAGE}.train"):
      continue
    tree = ast.parse(open(path).read())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr)}
    for node in ast.walk(tree):
      if (isinstance(node, ast.Constant) and isinstance(node.value, str)
          and "metrics.jsonl" in node.value and id(node) not in docstrings):
        bad.append(f"{path}:{node.lineno}: names metrics.jsonl")
      if isinstance(node, (ast.Name, ast.Attribute)) and \
          getattr(node, "id", getattr(node, "attr", None)) == "MetricsLog":
        bad.append(f"{path}:{node.lineno}: uses MetricsLog")
  assert not bad, bad
