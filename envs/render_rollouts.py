"""``python -m mnemax.envs.render_rollouts``, the former path of :mod:`mnemax.envs.tools.render_rollouts`."""

from mnemax.envs.tools.render_rollouts import *  # noqa: F403

if __name__ == "__main__":
    main()  # noqa: F405
