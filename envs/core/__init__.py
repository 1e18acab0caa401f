"""The environment core: the functional :class:`~mnemax.envs.core.environment.Environment` base, spaces,
declared parameters, the id registry, wrappers and JAX rasterization. Tasks build on it; nothing here
knows a task."""
