"""`python -m sluice_sdk build score.py -o scorer.wasm`."""

import sys

from .build import main

sys.exit(main())
