"""Model families: each subpackage registers its slot implementations and objective on import."""

from worldflux.families import (
    diffusion,  # noqa: F401
    dit,  # noqa: F401
    dreamerv3,  # noqa: F401
    gan,  # noqa: F401
    jepa,  # noqa: F401
    physics,  # noqa: F401
    renderer3d,  # noqa: F401
    ssm,  # noqa: F401
    tdmpc2,  # noqa: F401
    token,  # noqa: F401
    vjepa2,  # noqa: F401
)
