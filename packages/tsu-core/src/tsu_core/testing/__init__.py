"""The conformance suite and statistics that every backend is checked with.

`BackendConformance` holds the tests (subclass it with a `backend` fixture); `python -m
tsu_core.testing --backend NAME` runs them on an installed backend. Needs pytest
(`pip install tsu-core[testing]`). `readme_examples` and `run_readme_example` read and run the
Python examples of a package's README; `readme_test` is the test each package runs them with;
`readme_commands`, `run_readme_command` and `readme_commands_test` do the same for its command
blocks. `matrix.once_per_package` marks a test that runs in one of a package's backend sessions;
`memory.measure_peak` and `memory.check_estimate` hold a memory estimate against a run.
"""

from tsu_core.testing.bad_input import BAD_INPUT_CASES, BadInputCase, check_bad_input
from tsu_core.testing.conformance import BackendConformance, SuiteConfig, certification
from tsu_core.testing.models import (
    IndependentSpins,
    edgeless_model,
    frustrated_model,
    random_categorical_model,
    random_spin_model,
    ring_correlations,
    ring_model,
)
from tsu_core.testing.readme import (
    ReadmeExample,
    readme_commands,
    readme_commands_test,
    readme_examples,
    readme_test,
    run_readme_command,
    run_readme_example,
)

__all__ = [
    "BAD_INPUT_CASES",
    "BackendConformance",
    "BadInputCase",
    "IndependentSpins",
    "ReadmeExample",
    "SuiteConfig",
    "certification",
    "check_bad_input",
    "edgeless_model",
    "frustrated_model",
    "random_categorical_model",
    "random_spin_model",
    "readme_commands",
    "readme_commands_test",
    "readme_examples",
    "readme_test",
    "ring_correlations",
    "ring_model",
    "run_readme_command",
    "run_readme_example",
]
