"""The project's offline Ozon Seller API simulator (see ``server`` and ``catalogue``)."""

from ozon_simulator.catalogue import Catalogue, build_catalogue
from ozon_simulator.server import (
    Account,
    Fault,
    OzonSimulator,
    RunningSimulator,
    SimulatorConfig,
    default_simulator,
    serve,
)

__all__ = [
    "Account",
    "Catalogue",
    "Fault",
    "OzonSimulator",
    "RunningSimulator",
    "SimulatorConfig",
    "build_catalogue",
    "default_simulator",
    "serve",
]
