"""Per-grant green-list watermarks (Kirchenbauer et al. 2023), one class per scheme.

At a decoding step the context and a per-grant key pick a pseudo-random "green" share `gamma` of
the vocabulary; `delta` is added to the green tokens' logits before sampling. Text made that way
holds more green tokens than the `gamma` share expected by chance, which a one-sided binomial test
detects.

- `base`: what a scheme declares (its typed parameters, green test, biased rows, scored positions,
  receipt claims) and the registry; generation, the many-keys pass and detection shared by all.
- `lefthash` (the first scheme, kept so that every text made under it stays verifiable),
  `sweet` (entropy-selective green lists) and `gumbel` (distortion-free Gumbel-max sampling, scored
  by an exact Gamma tail): one module, one class each.
- `mixing` (keys and splitmix64), `statistics` (z, exact binomial and Gamma tails, the verdict rule),
  `entropy` (the model's next-token entropy), `keys` (WatermarkKey, what the engine holds),
  `by_name` (the operations called with a scheme name).

A grant stores its scheme name and parameters (licensing takes them from settings, opaque); they
are validated here, through the scheme's class, whenever a key is built from them.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import (
    DEFAULT_DELTA,
    DEFAULT_GAMMA,
    SCHEMES,
    Scheme,
    WatermarkParamsInvalid,
    WatermarkScheme,
    WatermarkSchemeError,
    WatermarkSchemeUnknown,
    register_scheme,
    scheme_build,
    scheme_class,
    scored_pairs,
)
from .by_name import detect, detect_any, detect_best, green_counts, green_mask, is_green, scheme_of
from .entropy import next_token_entropy, text_entropies
from .gumbel import Gumbel
from .keys import WatermarkKey, watermark_bias, watermark_choose, watermark_key_build, watermark_logits
from .lefthash import LeftHash
from .mixing import watermark_key_derive
from .statistics import (
    DEFAULT_ALPHA,
    DEFAULT_Z_THRESHOLD,
    Detection,
    MultiDetection,
    binomial_sf,
    detected,
    gamma_sf,
    z_score,
)
from .sweet import Sweet

# Every module of this package is imported, so a scheme's module registers its class without being
# named anywhere else: a new scheme is its module plus its settings entry.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

LEFTHASH = LeftHash.name
SWEET = Sweet.name
GUMBEL = Gumbel.name

__all__ = [
    "DEFAULT_ALPHA", "DEFAULT_DELTA", "DEFAULT_GAMMA", "DEFAULT_Z_THRESHOLD", "GUMBEL", "LEFTHASH", "SCHEMES", "SWEET",
    "Detection", "Gumbel", "LeftHash", "Scheme", "MultiDetection", "Sweet", "WatermarkKey", "WatermarkParamsInvalid",
    "WatermarkScheme", "WatermarkSchemeError", "WatermarkSchemeUnknown", "binomial_sf", "detect", "gamma_sf", "detect_any",
    "detect_best", "detected", "green_counts", "green_mask", "is_green", "next_token_entropy", "register_scheme",
    "scheme_build", "scheme_class", "scheme_of", "scored_pairs", "text_entropies", "watermark_bias",
    "watermark_choose", "watermark_key_build", "watermark_key_derive", "watermark_logits", "z_score",
]
