"""The memory tasks. Each module (or package) is one task family and registers its ids when imported;
importing this package registers them all."""

from mnemax.envs.tasks import tmaze  # noqa: F401  isort: skip
from mnemax.envs.tasks import memory_gym  # noqa: F401  isort: skip
from mnemax.envs.tasks import ballet, object_permanence  # noqa: F401  isort: skip
from mnemax.envs.tasks import context_edit  # noqa: F401  isort: skip
from mnemax.envs.tasks import diagnostics  # noqa: F401  isort: skip
