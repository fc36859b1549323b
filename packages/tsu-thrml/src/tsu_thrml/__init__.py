"""tsu-thrml: Extropic's thrml as a tsu-core backend (`tsu_core.get_backend("thrml")`).

A topology becomes thrml nodes, colour blocks and energy factors once (`ThrmlGraph`); each call
fills the weights in, `vmap`s thrml's block Gibbs sampler over the chains and records states or
moments with thrml's observers. See `docs/backend-guide.md` for this package as a worked example
of a vendor plugin.
"""

from tsu_thrml.backend import ThrmlBackend
from tsu_thrml.graph import ThrmlGraph
from tsu_thrml.program import ThrmlProgram

__version__ = "0.1.0"

__all__ = ["ThrmlBackend", "ThrmlGraph", "ThrmlProgram", "__version__"]
