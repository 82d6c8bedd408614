#!/usr/bin/env python3
"""Crop every face of every photo in original_data/<class>/ into processed_data/<class>/. See --help."""

import sys

from maskdetect.faces import main

if __name__ == "__main__":
    sys.exit(main())
