"""Neural-network building blocks shared by families and behaviours (imports only torch and core).

``nets``: DreamerV3's dense/conv layers, norms, symlog/symexp (official initialisers);
``dists``: two-hot, bounded normal and unimix categorical distributions; ``heads``: MLP heads
producing them (reward/value, continue, policy); ``returns``: lambda-returns and percentile
return normalisation. DreamerV3 and the shared imagination actor-critic
(:mod:`worldflux.behaviour.actor_critic`) both build on them.
"""
