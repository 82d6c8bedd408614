"""The test tiers: ``-m unit`` (no TensorFlow or Keras loaded: a test marked ``unit`` that loads either fails),
``-m "not slow"`` (every module touched, in a few minutes) and everything.

Where the shared weights file is present, every test runs with a Keras home of its session's own, holding
that file in models/ as a user offline would copy it: the default network (MobileNetV2 from ImageNet weights)
trains offline, and the user's ~/.keras is neither read nor written. Without it, Keras's own home is used
(where the first command, online, cached the file). Tests that check the download or its absence set a home
of their own."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from helpers import SHARED_DATA

from maskdetect.settings import DEFAULT_ALPHA

WEIGHTS = SHARED_DATA.parent / "weights"
_HEAVY_BEFORE = pytest.StashKey[bool]()


@pytest.fixture(scope="session", autouse=True)
def keras_home(tmp_path_factory):
    name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{DEFAULT_ALPHA}_224_no_top.h5"
    if not (WEIGHTS / name).is_file():
        yield None
        return
    home = tmp_path_factory.mktemp("keras_home")
    (home / "models").mkdir()
    shutil.copy(WEIGHTS / name, home / "models" / name)
    before = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = str(home)  # child processes (the pipeline, sweep trials) inherit it
    yield home
    if before is None:
        os.environ.pop("KERAS_HOME", None)
    else:
        os.environ["KERAS_HOME"] = before


HEAVY = ("tensorflow", "keras")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_HEAVY_BEFORE] = any(name in sys.modules for name in HEAVY)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A test of the unit tier whose fixtures or body load TensorFlow or Keras fails: the tier's speed depends
    on it (a process that had loaded them before the test cannot tell)."""
    result = yield
    if item.get_closest_marker("unit") and not item.stash.get(_HEAVY_BEFORE, True):
        loaded = [name for name in HEAVY if name in sys.modules]
        if loaded:
            pytest.fail(f"a unit-tier test loaded {', '.join(loaded)}: mark it otherwise or keep the import out")
    return result
