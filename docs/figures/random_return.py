"""The mean return of a uniform random policy on an environment, the baseline the learning
figures draw (``python docs/figures/random_return.py ENV [--action-repeat N] [--episodes N]``).

Continuous actions are uniform in the model's range ``[-1, 1]`` (rescaled to the environment's
box by :class:`worldflux.training.envs.GymEnv`), discrete ones uniform over the actions.
"""

from __future__ import annotations

import argparse

import numpy as np

from worldflux.training.envs import GymEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("env")
    parser.add_argument("--action-repeat", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    env = GymEnv(args.env, seed=args.seed, action_repeat=args.action_repeat)
    rng = np.random.default_rng(0)
    returns = []
    for _ in range(args.episodes):
        env.reset()
        done, total = False, 0.0
        while not done:
            if env.spec.action_type == "discrete":
                action: object = int(rng.integers(env.spec.action_dim))
            else:
                action = rng.uniform(-1.0, 1.0, env.spec.action_dim).astype(np.float32)
            _, reward, terminated, truncated = env.step(action)
            total, done = total + reward, terminated or truncated
        returns.append(total)
    print(
        f"{args.env} (action repeat {args.action_repeat}): random policy mean "
        f"{np.mean(returns):.1f} sd {np.std(returns):.1f} over {args.episodes} episodes"
    )


if __name__ == "__main__":
    main()
