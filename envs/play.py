"""``python -m mnemax.envs.play``, the former path of :mod:`mnemax.envs.tools.play`."""

from mnemax.envs.tools.play import *  # noqa: F403

if __name__ == "__main__":
    main()  # noqa: F405
