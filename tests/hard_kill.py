"""A run killed with SIGKILL after its N-th checkpoint write (no cleanup, no flush), in a
process of its own: what the checkpoint tests resume from."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, signal, sys

    writes = 0
    real_replace = os.replace

    def replace_then_maybe_die(src, dst):
        global writes
        real_replace(src, dst)
        writes += 1
        if writes == {killed_after}:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: a hard kill

    os.replace = replace_then_maybe_die  # flowsim.files renames each write into place
    sys.path.insert(0, {tests!r})
    from {module} import {function}
    {function}(sys.argv[1])
""")


def killed_run(module: str, function: str, path, killed_after: int):
    """Run ``module.function(path)`` (a module of tests/) in a new process that kills
    itself with SIGKILL right after its ``killed_after``-th file write; the finished
    process (``subprocess.CompletedProcess``)."""
    script = SCRIPT.format(killed_after=killed_after, tests=os.path.dirname(__file__),
                           module=module, function=function)
    return subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=600)
