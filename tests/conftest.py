import gc
import os
import shutil
import sys
import tempfile

# Tests run headless and on the CPU whatever the machine has.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Most tests are bound by compiling, not by running what they compile, and XLA's backend optimisations
# (LLVM at -O0, its expensive passes off) cost more there than they save: on two cores the four-device
# sharding test went from 139 to 86 s without them, the two-process one from 103 to 68 s. Subprocesses
# inherit this; in this process `_cheap_compiles` below sets it per test.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

# Compiling dominates the run time of the suite, and many tests compile the same programs (the same tiny
# training configuration in several trainers, a run and its resumed run, the CLI in a subprocess). One
# persistent compilation cache for the whole run, shared by the pytest-xdist workers and the subprocesses
# they start (all inherit the environment), compiles each program once. It is new for every run and
# removed at its end; a cache set in the environment is used as it is.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="mnemax-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    if "jax" in sys.modules:  # imported before this file (by a plugin): it read its environment already
        import jax

        jax.config.update("jax_compilation_cache_dir", _OWN_CACHE)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


import jax  # noqa: E402  (after the environment above is set)
import pytest  # noqa: E402

# JAX's own reading of JAX_DISABLE_MOST_OPTIMIZATIONS (set above unless the environment had it).
_CHEAP_COMPILES = jax.config.values["jax_disable_most_optimizations"]


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:  # the process that made it: pytest itself, or the xdist controller
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's in-memory caches of compiled programs after each test module. Kept for the whole run
    they grew each xdist worker past 7 GB on a 2-core machine with 23 GB, where a worker then crashed
    ("can't start new thread", then a segmentation fault). What a later module needs again comes back
    from the persistent cache above."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture(autouse=True)
def _cheap_compiles(request):
    """XLA's backend optimisations off (see the environment above), except for the learning tests (marker
    ``slow``), which train for minutes (``test_gru_solves_passive_tmaze`` took 33 s without them, 18 s
    with), the other tests that run longer than they compile (marker ``optimized``; Ballet's memoryless
    rollouts took 44 s without them, 10 s with, on two busy cores) and the tests against digests recorded
    with them (marker ``exact``). Where the environment asks for them, every test keeps them."""
    keep = any(request.node.get_closest_marker(name) for name in ("slow", "optimized", "exact"))
    jax.config.update("jax_disable_most_optimizations", _CHEAP_COMPILES and not keep)
    yield
