"""The generic Registry and the config field checks every layer shares."""

import ml_collections
import pytest

from fedbbpt_jax.core import (ConfigError, Registry, UnknownNameError, check_choice,
                              check_number, check_string)


def test_register_get_names_and_tags():
  reg = Registry("widget")
  reg.register("b", 2, tags=("even",))

  @reg.register("a", tags=("odd",))
  def one():
    return 1

  assert reg.get("a") is one and reg.get("b") == 2
  assert reg.names() == ("a", "b")
  assert reg.names("even") == ("b",) and reg.names(without="even") == ("a",)
  assert "a" in reg and len(reg) == 2 and reg.tags("a") == {"odd"}
  reg.unregister("a")
  assert reg.names() == ("b",)


def test_duplicates_are_refused_unless_overwritten():
  reg = Registry("widget")
  reg.register("a", 1)
  with pytest.raises(ValueError, match="already registered"):
    reg.register("a", 2)
  reg.register("a", 3, overwrite=True)
  assert reg.get("a") == 3


def test_unknown_name_names_the_field_value_and_choices():
  reg = Registry("widget")
  reg.register("x", 0)
  reg.register("y", 0)
  with pytest.raises(UnknownNameError) as e:
    reg.get("z", "server.widget")
  assert str(e.value) == ("config.server.widget='z' is not a registered widget; choose one of "
                          "['x', 'y'], or register your own in a module of yours (register it) "
                          "and load it with --imports=your.module (see docs/extending.md)")
  homed = Registry("widget", home="my_lib.widgets.WIDGETS")
  with pytest.raises(UnknownNameError) as e:
    homed.get("z", "server.widget")
  assert ("(from my_lib.widgets import WIDGETS; WIDGETS.register('z', ...))" in str(e.value))
  assert isinstance(e.value, ValueError)


def test_field_checks_name_field_value_and_range():
  c = ml_collections.ConfigDict({"a": {"n": 3, "s": "", "k": "q"}})
  check_number(c, "a.n", low=1, high=3, integer=True)
  with pytest.raises(ConfigError, match=r"config.a.n=3 must be <= 2"):
    check_number(c, "a.n", high=2)
  with pytest.raises(ConfigError, match=r"config.a.n=3 must be > 3"):
    check_number(c, "a.n", low=3, low_inclusive=False)
  with pytest.raises(ConfigError, match=r"config.a.k='q' is not one of \['p', 'r'\]"):
    check_choice(c, "a.k", ("r", "p"))
  with pytest.raises(ConfigError, match=r"config.a.s='' must be a non-empty string"):
    check_string(c, "a.s", non_empty=True)
  with pytest.raises(ConfigError, match=r"config field 'a.missing' is missing"):
    check_number(c, "a.missing")
