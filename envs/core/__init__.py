"""The environment core: the functional :class:`~mnemax.envs.core.environment.Environment` base, spaces,
declared parameters, the id registry, wrappers, JAX rasterization and :func:`~mnemax.envs.core.rarely.rarely`
(a costly branch computed only for the vmapped copies that take it). Tasks build on it; nothing here
knows a task."""
