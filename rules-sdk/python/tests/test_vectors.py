"""The shared helper vectors (rules-sdk/testdata/helpers.json) against the Python SDK: the same
file rules-sdk/tests/vectors.rs runs against the Rust SDK, so both give the same answers."""

import inspect
import json
import pathlib

import pytest

from ldap2ftrack_rules import dn, email, names

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "helpers.json"
FUNCTIONS = json.loads(VECTORS.read_text(encoding="utf-8"))["functions"]
MODULES = {"names": names, "email": email, "dn": dn}


def comparable(value):
    """Rdn records as [attr, value] pairs, the vectors' spelling of dn.parse's answer."""
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, dn.Rdn):
        return [value.attr, value.value]
    return value


@pytest.mark.parametrize(
    "function, case",
    [(f, case) for f, cases in FUNCTIONS.items() for case in cases],
    ids=lambda v: v if isinstance(v, str) else repr(v["args"])[:60],
)
def test_vector(function, case):
    module, name = function.split(".")
    answer = getattr(MODULES[module], name)(*case["args"])
    assert comparable(answer) == case["expected"], case.get("note", "")


def test_every_public_helper_has_vectors():
    for module_name, module in MODULES.items():
        public = {
            n for n, f in vars(module).items()
            if inspect.isfunction(f) and not n.startswith("_") and f.__module__ == module.__name__
        }
        covered = {f.split(".")[1] for f in FUNCTIONS if f.startswith(module_name + ".")}
        assert public == covered, module_name
