#!/usr/bin/env python3
"""Find the faces in images, folders, videos or a webcam and classify each with a trained model. See --help."""

import sys

from maskdetect.detect import main

if __name__ == "__main__":
    sys.exit(main())
