"""Hypothesis settings for the judges' property tests.

No example database (it would leave a ``.hypothesis`` directory in the checkout) and no
per-example deadline (the first example pays for importing SciPy).
``HYPOTHESIS_PROFILE=thorough`` runs 20 times more examples.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("boxgym", database=None, deadline=None, max_examples=150)
settings.register_profile("thorough", database=None, deadline=None, max_examples=3000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "boxgym"))
