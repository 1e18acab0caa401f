"""Tools around the environments: the keyboard player (``python -m mnemax.envs.tools.play``), rollout
videos (``python -m mnemax.envs.tools.render_rollouts``), the environment list (``mnemax-envs``), the
pygame window, video writing, and what every command-line entry point of mnemax shares."""
