"""Bridges to other libraries: gymnasium's ``Env`` / ``VectorEnv`` (behind ``gymnasium.make("mnemax/...")``)
and the single-``done`` ``step`` of gymnax 0.0.x."""
