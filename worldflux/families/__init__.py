"""Model families: each subpackage registers its slot implementations and objective on import."""

from worldflux.families import diffusion  # noqa: F401
from worldflux.families import dit  # noqa: F401
from worldflux.families import dreamerv3  # noqa: F401
from worldflux.families import gan  # noqa: F401
from worldflux.families import jepa  # noqa: F401
from worldflux.families import physics  # noqa: F401
from worldflux.families import renderer3d  # noqa: F401
from worldflux.families import ssm  # noqa: F401
from worldflux.families import tdmpc2  # noqa: F401
from worldflux.families import token  # noqa: F401
from worldflux.families import vjepa2  # noqa: F401
