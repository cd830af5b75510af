"""Run a managed server so that nothing it starts outlives the gateway, even a SIGKILLed one.

    python reaper.py GRACE STOP_SIGNAL -- ARGV...

Started by the gateway as the leader of a new process group; the server runs as its child in the
same group, and so do the processes the server forks (vLLM's engine processes, for one) unless
they leave the group on purpose. The reaper:

* asks the kernel for SIGUSR1 when the gateway dies (``PR_SET_PDEATHSIG``): then it sends the
  stop signal to the whole group, waits GRACE seconds, and kills the group;
* ignores the stop signals (TERM, INT, QUIT, HUP) itself: when the gateway stops the group, the server gets the signal
  directly and the reaper waits for it to exit;
* when the server exits on its own, kills what is left of the group and exits the way the server
  did (same code, or the same signal), so the gateway sees the crash as it was.

Run as a script by path, with nothing imported from nanoserve: it must start in milliseconds.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)


def _kill_group(sig: int) -> None:
    try:
        os.killpg(0, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str]) -> int:
    grace, stop_signal = float(argv[0]), int(argv[1])
    command = argv[argv.index("--") + 1 :]
    parent = os.getppid()
    orphaned = False

    def on_parent_death(signum: int, frame: object) -> None:
        nonlocal orphaned
        orphaned = True

    signal.signal(signal.SIGUSR1, on_parent_death)
    for sig in STOP_SIGNALS:  # the server gets them from the group signal; the reaper waits for it
        signal.signal(sig, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the getppid poll below still notices
        pass
    pid = os.fork()
    if pid == 0:  # the server: default signal handling, same process group
        for sig in (*STOP_SIGNALS, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            print(f"cannot run {command[0]}: {exc}", file=sys.stderr, flush=True)
            os._exit(127)
    deadline: float | None = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if not orphaned and os.getppid() != parent:
            orphaned = True
        if orphaned and deadline is None:
            print("reaper: the gateway is gone; stopping the server", file=sys.stderr, flush=True)
            _kill_group(stop_signal)
            deadline = time.monotonic() + grace
        if deadline is not None and time.monotonic() >= deadline:
            _kill_group(signal.SIGKILL)  # the reaper goes too
        time.sleep(POLL_SECONDS)
    _kill_rest()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig != signal.SIGKILL:  # SIGKILL's disposition cannot be set (OSError); it kills anyway
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    return os.waitstatus_to_exitcode(status)


def _kill_rest() -> None:
    """Stop every other process of the group (the server's leftovers), sparing the reaper (which
    ignores SIGTERM)."""
    _kill_group(signal.SIGTERM)
    time.sleep(POLL_SECONDS)
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.getpgid(int(entry)) == me:
                os.kill(int(entry), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
