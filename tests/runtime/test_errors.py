"""C++ errors (csrc/include/ofrt/errors.h) arrive as the classes of omniforcing_rt.errors."""

from __future__ import annotations

import re

import pytest

from omniforcing_rt import _C, errors

OFRT_CLASSES = [
    "OfrtError",
    "ConfigError",
    "InputError",
    "CheckpointError",
    "UnsupportedError",
    "CacheCapacityError",
    "BackendError",
    "StreamAbortedError",
    "EngineDeadError",
]


def test_every_python_error_class_has_a_cpp_twin():
    assert sorted(OFRT_CLASSES) == sorted(errors.__all__)


@pytest.mark.parametrize("name", OFRT_CLASSES)
def test_cpp_error_arrives_as_python_class(name):
    cls = getattr(errors, name)
    with pytest.raises(cls) as info:
        _C._testing.throw_error(name, f"boom from {name}")
    assert type(info.value) is cls
    assert isinstance(info.value, errors.OfrtError)
    assert str(info.value) == f"boom from {name}"
    assert getattr(_C, name) is cls  # re-exported as the same class object


@pytest.mark.parametrize(("name", "attr"), [("ConfigError", "problems"), ("UnsupportedError", "reasons")])
def test_lists_arrive(name, attr):
    cls = getattr(errors, name)
    items = ["first problem", "second: with 'quotes' and\nnewline", "ünïcode"]
    with pytest.raises(cls) as info:
        _C._testing.throw_error(name, "invalid thing", items)
    assert type(info.value) is cls
    assert getattr(info.value, attr) == items
    assert str(info.value) == str(cls("invalid thing", items))
    assert str(info.value).startswith("invalid thing:\n  - first problem\n  - second")
    with pytest.raises(cls) as info:
        _C._testing.throw_error(name, "no items")
    assert getattr(info.value, attr) == []
    assert str(info.value) == "no items"


def test_python_bases_are_kept():
    with pytest.raises(ValueError):
        _C._testing.throw_error("ConfigError", "x")
    with pytest.raises(ValueError):
        _C._testing.throw_error("InputError", "x")
    with pytest.raises(ValueError):
        _C._testing.throw_error("CheckpointError", "x")
    for name in ("CacheCapacityError", "BackendError", "StreamAbortedError", "EngineDeadError"):
        with pytest.raises(RuntimeError):
            _C._testing.throw_error(name, "x")


def test_standard_exceptions_are_not_ofrt_errors():
    with pytest.raises(RuntimeError, match="plain") as info:
        _C._testing.throw_error("std::runtime_error", "plain")
    assert not isinstance(info.value, errors.OfrtError)
    with pytest.raises(OverflowError, match="too big"):
        _C._testing.throw_error("std::overflow_error", "too big")


@pytest.mark.parametrize("name", ["ConfigError", "InputError", "BackendError", "EngineDeadError"])
def test_ofrt_check_adds_condition_and_location(name):
    cls = getattr(errors, name)
    assert _C._testing.check_non_negative(name, 3) == 3
    with pytest.raises(cls) as info:
        _C._testing.check_non_negative(name, -7)
    assert type(info.value) is cls
    assert re.fullmatch(
        r"value must be >= 0, got -7 \(check `value >= 0` failed at csrc/bindings/testing\.cc:\d+\)",
        str(info.value),
    ), str(info.value)


def test_ofrt_throw_adds_location():
    with pytest.raises(errors.InputError) as info:
        _C._testing.throw_error("NoSuchError", "x")
    assert re.fullmatch(r"unknown error class 'NoSuchError' \(at csrc/bindings/testing\.cc:\d+\)", str(info.value))


def test_real_call_sites_raise_translated_errors():
    with pytest.raises(errors.ConfigError) as info:
        _C.BlockLayout.create("release", 0, 16)
    assert info.value.problems == ["num_blocks must be >= 1, got 0"]
    with pytest.raises(errors.InputError):
        _C.video_latent_bounds_s(0, -1)
