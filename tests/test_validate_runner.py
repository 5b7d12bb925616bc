"""The validate runner's child processes: they end when the validate process is killed, and keep the
memory they free."""

import os
import subprocess
import sys
import time

import pytest

PARENT = r"""
import concurrent.futures, multiprocessing, os, sys, time
from pipelines.validation.runner import end_with_parent

def child_pid():
    return os.getpid()

def sleep_long():
    time.sleep(120)

if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context, initializer=end_with_parent) as pool:
        print(pool.submit(child_pid).result(), flush=True)
        pool.submit(sleep_long)
        time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_a_killed_parent_takes_its_children_with_it(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()  # SIGKILL: no cleanup runs in the parent
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the pool's child outlived its killed parent"
    finally:
        parent.kill()


FAULTS = r"""
import resource, sys, torch
from pipelines.validation.runner import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else False
torch.empty(16_000_000).fill_(1.0)  # 64 MB, freed at once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):  # the same size again
    torch.empty(16_000_000).fill_(1.0)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_trainer_reuses_the_memory_it_freed(tmp_path):
    script = tmp_path / "faults.py"
    script.write_text(FAULTS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    faults = {}
    for mode in ("default", "reuse"):
        out = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, check=True,
                             env=env).stdout.split()
        faults[mode] = (out[0] == "True", int(out[1]))
    # 64 MB is 15,625 pages of 4 kB, paged in afresh 8 times by default; reused after
    # reuse_freed_memory, but for once at most (an aligned allocation may not fit the block freed)
    assert faults["default"][1] > 100_000, faults
    assert faults["reuse"][0] and faults["reuse"][1] < 20_000, faults
