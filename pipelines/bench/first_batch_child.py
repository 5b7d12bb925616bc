"""The first-batch part's child process: ``python -m pipelines.bench.first_batch_child CONFIG WORKERS``.

Loads ``CONFIG``, wraps ``build_pipe`` in a ``DataLoader`` with ``WORKERS`` workers, takes the
first batch and prints the seconds that took, counted from this module's first line (so after
the interpreter's start and the import of the ``pipelines`` package that ``-m`` runs first;
the parent times the whole process from its start).
"""

import time

start = time.perf_counter()

import sys  # noqa: E402 (timed from the line above)

from torch.utils.data import DataLoader  # noqa: E402

from pipelines.build import build_pipe, load_config  # noqa: E402


def main(argv: list[str]) -> None:
    config_path, workers = argv
    loader = DataLoader(build_pipe(load_config(config_path)), batch_size=None, num_workers=int(workers))
    next(iter(loader))
    print(time.perf_counter() - start, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
