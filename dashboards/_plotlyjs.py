"""Which plotly.js the dashboard and the report load: our partial bundle, or plotly's full one.

``_static/plotly-nas.min.js`` is plotly.js with only the trace types our figures use (built by
``scripts/build-plotly-bundle.sh``): 1.6 MB against the full bundle's 4.8 MB, and a browser that
meets it for the first time parses and runs it in a fraction of the time (on this project's
2-core machine, headless Chromium: ~0.13 s against ~0.97 s). The figures' JSON comes from the
installed plotly (Python), written for the plotly.js version it ships; the partial bundle is used
only when it is that same version, else the full one is (and a warning says how to rebuild).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BUNDLE = Path(__file__).with_name("_static") / "plotly-nas.min.js"
#: The trace types the partial bundle registers (scripts/plotly-bundle/entry.js); "scatter" is in core.
BUNDLED_TRACES = frozenset({"scatter", "scattergl", "bar", "box", "parcoords"})


@dataclass(frozen=True)
class PlotlyJS:
    """One plotly.js build: its version, its source, and a file name that changes with its bytes."""

    version: str
    source: bytes
    partial: bool

    @property
    def filename(self) -> str:
        digest = hashlib.sha256(self.source).hexdigest()[:12]
        return f"plotly-{self.version}-{'nas' if self.partial else 'full'}-{digest}.min.js"


def bundle_version(source: bytes) -> str | None:
    """The plotly.js version named in a bundle's banner (``/*! plotly.js v4.1.1 ...``)."""
    match = re.match(rb"/\*!? plotly\.js v(\d+\.\d+\.\d+)", source[:200])
    return match.group(1).decode() if match else None


@functools.cache
def partial_bundle() -> PlotlyJS | None:
    """Our partial bundle if it matches the installed plotly's plotly.js version, else None."""
    from plotly.offline import get_plotlyjs_version

    wanted = get_plotlyjs_version()
    try:
        source = BUNDLE.read_bytes()
    except OSError as exc:
        logger.warning("the partial plotly.js bundle is missing (%s): the full plotly.js is served", exc)
        return None
    found = bundle_version(source)
    if found is None or found != wanted:
        logger.warning(
            "the partial plotly.js bundle is version %s, the installed plotly writes figures for plotly.js %s: "
            "the full plotly.js (4.8 MB) is served; scripts/build-plotly-bundle.sh rebuilds the bundle",
            found,
            wanted,
        )
        return None
    return PlotlyJS(found, source, partial=True)


@functools.cache
def plotly_js() -> PlotlyJS:
    """What a page loads: the partial bundle when it fits, else plotly's own full bundle."""
    partial = partial_bundle()
    if partial is not None:
        return partial
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    return PlotlyJS(get_plotlyjs_version(), get_plotlyjs().encode(), partial=False)
