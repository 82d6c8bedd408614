#!/usr/bin/env python3
"""Find exact and near-duplicate photos in the class folders and set them aside. See --help."""

import sys

from maskdetect.dedup import main

if __name__ == "__main__":
    sys.exit(main())
