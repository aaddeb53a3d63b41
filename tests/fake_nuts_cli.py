"""The gmmflow command line with NUTS replaced by ``conftest.fake_nuts`` (tests run it as a subprocess).

    python tests/fake_nuts_cli.py ARGS...                  # as ``gmmflow ARGS...``
    python tests/fake_nuts_cli.py ARGS... --and ARGS...    # several commands in one process

The exit code is the first non-zero one (the later commands still run).

Environment: ``FAKE_NUTS_FLAG`` names a file created when sampling starts;
``FAKE_NUTS_SLEEP`` seconds the sampler then waits (in short sleeps, so a
signal is handled at once) before returning its draws.
"""

import os
import sys
import time
from pathlib import Path

from conftest import fake_nuts

import gmmflow.workflows.nuts_backends as backends
from gmmflow.cli import main


def sampler(*args):
    flag = os.environ.get("FAKE_NUTS_FLAG")
    if flag:
        Path(flag).touch()
    deadline = time.monotonic() + float(os.environ.get("FAKE_NUTS_SLEEP", "0"))
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return fake_nuts(*args)


def commands(argv):
    command = []
    for arg in argv:
        if arg == "--and":
            yield command
            command = []
        else:
            command.append(arg)
    yield command


for runner in backends.RUNNERS.values():  # every backend, "auto" included
    setattr(backends, runner, sampler)
codes = [main(command) for command in commands(sys.argv[1:])]
sys.exit(next((code for code in codes if code), 0))
