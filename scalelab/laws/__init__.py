"""Scaling-law families: pure maths, no fitting, no I/O.

Every law is registered by name; :func:`make_law` builds one, :func:`available_laws` lists them.
"""

from scalelab.laws.base import Law, Param
from scalelab.laws.broken_power_law import BrokenPowerLaw
from scalelab.laws.chinchilla import Chinchilla
from scalelab.laws.data_constrained import DataConstrained
from scalelab.laws.data_mixing import DataMixing
from scalelab.laws.gompertz import Gompertz
from scalelab.laws.gompertz_nd import GompertzND
from scalelab.laws.kaplan import Kaplan
from scalelab.laws.power_law import PowerLaw
from scalelab.laws.registry import available_laws, get_law_class, make_law, register
from scalelab.laws.sigmoid import Sigmoid

register(Chinchilla)
register(PowerLaw)
register(Kaplan)
register(BrokenPowerLaw)
register(Sigmoid)
register(DataConstrained)
register(DataMixing)
register(Gompertz)
register(GompertzND)

__all__ = [
    "BrokenPowerLaw",
    "Chinchilla",
    "DataConstrained",
    "DataMixing",
    "Gompertz",
    "GompertzND",
    "Kaplan",
    "Law",
    "Param",
    "PowerLaw",
    "Sigmoid",
    "available_laws",
    "get_law_class",
    "make_law",
    "register",
]
