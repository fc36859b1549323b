"""tsu-core: the protocol, model description and exact reference backend of the TSU stack.

Describe a pairwise model once (`Topology` + `Parameters`), sample it on whichever backend is
installed (`get_backend`), and check a backend against exact enumeration (`tsu_core.testing`).
"""

from tsu_core.constructors import (
    bipartite,
    from_dense_matrix,
    from_edge_list,
    from_networkx,
    lattice_2d,
)
from tsu_core.energy import energy, local_fields
from tsu_core.errors import (
    BackendNotFound,
    IncompatibleBackend,
    InvalidModel,
    InvalidRequest,
    NotSupported,
    TSUError,
)
from tsu_core.exact import ExactDistribution
from tsu_core.keys import Key, as_key
from tsu_core.parameters import Parameters
from tsu_core.protocol import (
    PROTOCOL_VERSION,
    Backend,
    Capabilities,
    Clamp,
    Moments,
    Program,
    Samples,
)
from tsu_core.registry import available_backends, get_backend, incompatible_backends
from tsu_core.request import SampleRequest
from tsu_core.schedule import BetaSchedule, constant, custom, geometric, linear
from tsu_core.topology import Topology

__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_VERSION",
    "Backend",
    "BackendNotFound",
    "BetaSchedule",
    "Capabilities",
    "Clamp",
    "ExactDistribution",
    "IncompatibleBackend",
    "InvalidModel",
    "InvalidRequest",
    "Key",
    "Moments",
    "NotSupported",
    "Parameters",
    "Program",
    "SampleRequest",
    "Samples",
    "TSUError",
    "Topology",
    "as_key",
    "available_backends",
    "bipartite",
    "constant",
    "custom",
    "energy",
    "from_dense_matrix",
    "from_edge_list",
    "from_networkx",
    "geometric",
    "get_backend",
    "incompatible_backends",
    "lattice_2d",
    "linear",
    "local_fields",
]
