"""`python -m sluice_sdk build score.py -o scorer.wasm`, `python -m sluice_sdk convert-model MODEL_DIR`."""

import sys

from .build import main

sys.exit(main())
