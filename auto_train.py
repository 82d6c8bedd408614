#!/usr/bin/env python3
"""Sweep train_a_model.py's hyperparameters over a grid, unattended and resumable. See --help."""

import sys

from maskdetect.sweep import main

if __name__ == "__main__":
    sys.exit(main())
