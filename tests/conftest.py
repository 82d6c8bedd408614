"""Where the shared weights file is present, every test runs with a Keras home of its session's own, holding
that file in models/ as a user offline would copy it: the default network (MobileNetV2 from ImageNet weights)
trains offline, and the user's ~/.keras is neither read nor written. Without it, Keras's own home is used
(where the first command, online, cached the file). Tests that check the download or its absence set a home
of their own."""

from __future__ import annotations

import os
import shutil

import pytest
from helpers import SHARED_DATA

from maskdetect.settings import DEFAULT_ALPHA

WEIGHTS = SHARED_DATA.parent / "weights"


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
