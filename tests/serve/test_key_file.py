"""The key file loader refuses every malformed file naming the file and the entry, and a
refused charge (402) names the unit the service counts in."""

import json

import pytest

from fedbbpt_jax.serve.keys import AccessError, KeyStore


def write(tmp_path, text):
  path = tmp_path / "keys.json"
  path.write_bytes(text if isinstance(text, bytes) else text.encode())
  return str(path)


def test_a_valid_key_file_gives_its_budgets(tmp_path):
  path = write(tmp_path, json.dumps({"team-a-7f3c": 100, "admin-key-1": None, "zero-key": 0}))
  keys = KeyStore.from_file(path)
  assert not keys.open
  assert [keys.usage(k)["budget"] for k in ("team-a-7f3c", "admin-key-1", "zero-key")] == [
      100, None, 0]
  assert KeyStore.from_file(None).open and KeyStore.from_file("").open


@pytest.mark.parametrize("text,problem", [
    ("{'team-a': 5}", " is not valid JSON: Expecting property name enclosed in double quotes: "
                      "line 1 column 2 (char 1)"),
    ("", " is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    (b'{"team-\xff": 5}', " is not UTF-8 text: 'utf-8' codec can't decode byte 0xff in "
                          "position 7: invalid start byte"),
    ('["team-a", 5]', " must hold a non-empty JSON object {key: budget}, got an array"),
    ("{}", " must hold a non-empty JSON object {key: budget}, got an empty object"),
    ("null", " must hold a non-empty JSON object {key: budget}, got null"),
    ('"team-a"', " must hold a non-empty JSON object {key: budget}, got a string"),
    ('{"team-a-1": 5, "team-a-1": 7}', ": key 'team...' appears more than once"),
    ('{"good-key": 5, "team-b-2": -1}',
     ", entry 1 (key 'team...'): a budget must be an integer >= 0 or null, got -1"),
    ('{"team-b-2": 1.5}', ", entry 0 (key 'team...'): a budget must be an integer >= 0 or "
                          "null, got 1.5"),
    ('{"team-b-2": 1e3}', ", entry 0 (key 'team...'): a budget must be an integer >= 0 or "
                          "null, got 1000.0"),
    ('{"team-b-2": true}', ", entry 0 (key 'team...'): a budget must be an integer >= 0 or "
                           "null, got true"),
    ('{"team-b-2": "100"}', ", entry 0 (key 'team...'): a budget must be an integer >= 0 or "
                            "null, got \"100\""),
    ('{"good-key": 5, "": 10}', ", entry 1 (key '...'): a key must be non-empty and without "
                                "spaces"),
    ('{"  ": 10}', ", entry 0 (key '  ...'): a key must be non-empty and without spaces"),
    ('{"team a": 10}', ", entry 0 (key 'team...'): a key must be non-empty and without spaces"),
])
def test_a_malformed_key_file_is_refused_naming_the_file_and_the_entry(tmp_path, text, problem):
  path = write(tmp_path, text)
  with pytest.raises(ValueError) as error:
    KeyStore.from_file(path)
  assert str(error.value) == f"key file {path}{problem}"


def test_an_unreadable_key_file_is_named(tmp_path):
  missing = str(tmp_path / "nope.json")
  with pytest.raises(ValueError) as error:
    KeyStore.from_file(missing)
  assert str(error.value) == f"key file {missing} cannot be read: No such file or directory"
  with pytest.raises(ValueError) as error:
    KeyStore.from_file(str(tmp_path))
  assert str(error.value) == f"key file {tmp_path} cannot be read: Is a directory"


@pytest.mark.parametrize("unit", ["examples", "tokens"])
def test_a_refused_charge_names_the_unit_the_service_counts_in(unit):
  keys = KeyStore({"team-key": 30})
  keys.charge("team-key", 25, unit=unit)
  with pytest.raises(AccessError) as error:
    keys.charge("team-key", 6, unit=unit)
  e = error.value
  assert (e.status, e.code) == (402, "budget_exceeded")
  assert e.message == (f"query budget spent: key 'team...' has used 25 of 30 {unit}; this "
                       f"request of 6 {unit} needs more than the 5 left (refused whole, nothing "
                       "charged)")
  assert e.details == {"used": 25, "budget": 30, "remaining": 5, "requested": 6, "unit": unit}
  assert keys.usage("team-key")["used"] == 25 and keys.usage("team-key")["refused_requests"] == 1
