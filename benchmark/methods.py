"""The benchmark's view of the method registry: daclip's methods plus the runner-only ones.

The registry itself lives in :mod:`daclip.registry` (a library never imports its runner);
importing this module adds the rows that only make sense in a benchmark table.
"""

from __future__ import annotations

import numpy as np

from daclip.registry import (  # noqa: F401  (re-exported for the runner)
    Method,
    MethodSpec,
    MethodUnavailable,
    create_method,
    default_methods,
    method_spec,
    method_specs,
    parse_methods,
    register_method,
)


@register_method("identity", display_name="Input", description="the degraded input itself (no restoration)")
class Identity(Method):
    def restore(self, lq: np.ndarray, task: str) -> np.ndarray:
        return lq
