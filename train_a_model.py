#!/usr/bin/env python3
"""Train a face-mask classifier on processed_data/<class>/ crops. See --help."""

import sys

from maskdetect.train import main

if __name__ == "__main__":
    sys.exit(main())
