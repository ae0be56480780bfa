"""Where independent cells run: in-process, a local process pool, or a Dask cluster (same results on each)."""
from tsb_aihw.parallel.cells import run_cells
from tsb_aihw.parallel.executor import (
    DaskExecutor,
    Executor,
    ProcessExecutor,
    SerialExecutor,
    current_executor,
    make_executor,
    use_executor,
)

__all__ = ["DaskExecutor", "Executor", "ProcessExecutor", "SerialExecutor", "current_executor", "make_executor",
           "run_cells",
           "use_executor"]
