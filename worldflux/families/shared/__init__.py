"""Helpers shared by model families: families import core, components and this package, never
each other (import-linter enforces it in ``nox -s lint``).

``hparams``: hyperparameter lookup, MLPs, build-context checks; ``tensors``: small tensor
utilities of the objectives and slots; ``edm``: the EDM diffusion preconditioning and sampler
(Diffusion, DiT); ``transformer``: the causal transformer (Token, V-JEPA 2).
"""
