#!/usr/bin/env python3
"""Train the face stage's own face finder on labelled photos, and fit its fusion weights. See --help."""

import sys

from maskdetect.face.facefinder_train import main

if __name__ == "__main__":
    sys.exit(main())
