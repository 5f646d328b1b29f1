"""Hypothesis settings for the judges' property tests.

No example database (it would leave a ``.hypothesis`` directory in the checkout) and no
per-example deadline (the first example pays for importing SciPy).
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("boxgym", database=None, deadline=None, max_examples=150)
settings.load_profile("boxgym")
