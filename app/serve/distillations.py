"""Distillation jobs: `python -m app.make.distil FOLDER` run as a separate process (the serving half never imports the
making half), one at a time since each takes the CPU, watched through the status file it writes and stopped with a
signal (its last checkpoint stays, so starting again resumes)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from ..core import paths
from ..core.files import read_json, write_json

FINISHED = ("done", "failed", "cancelled", "not started")
STOP_WAIT_S = 20  # after SIGTERM, how long a job may take to write its status before it is killed


def running(pid: int | None) -> bool:
    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def send(pid: int, sig: int):
    """To the job's process group when it leads one (a job the page started: whatever it started stops too), else to
    the process alone (a job in the foreground of a command line)."""
    try:
        os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)
    except ProcessLookupError:  # it has just ended
        pass


class Jobs:
    """The distillations this server started, by memory folder; jobs of another server or of the command line are
    seen through the pid in their status file."""

    def __init__(self):
        self.processes = {}

    def status(self, folder: Path) -> dict:
        """The job's status.json, with "running" (its process is alive) and the phase "stopped" for a process that
        ended without saying so (killed)."""
        state = read_json(folder / "making" / "status.json") or {"phase": "not started"}
        process = self.processes.get(folder)
        alive = process.poll() is None if process else running(state.get("pid"))
        if not alive and state["phase"] not in FINISHED:
            state["phase"] = "stopped"
        return {**state, "running": alive and state["phase"] not in FINISHED}

    def start(self, folder: Path, steps: int, foreground: bool = False) -> int:
        """Starts the job (in the foreground: waits for it, its output on this terminal); returns its exit code in
        the foreground, else 0."""
        making = folder / "making"
        write_json(making / "status.json", {"phase": "starting", "steps": steps, "timings": {}, "started": time.time()})
        command = [sys.executable, "-m", "app.make.distil", str(folder), "--steps", str(steps)]
        # The job shares the CPU with this server; OpenMP threads that spin while they wait make it several times
        # slower then (measured: 2.3 s a step instead of 0.65 on the embedded decoder), so they sleep instead.
        env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "MEMDEC_CACHE": str(paths.CACHE)}
        if foreground:
            return subprocess.run(command, cwd=paths.ROOT, env=env).returncode
        with open(making / "job.log", "ab") as log:
            self.processes[folder] = subprocess.Popen(command, cwd=paths.ROOT, env=env, stdout=log,
                                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                           start_new_session=True)
        return 0

    def stop(self, folder: Path) -> bool:
        """SIGTERM, then SIGKILL if it has not ended within STOP_WAIT_S; False when nothing was running."""
        state = self.status(folder)
        if not state["running"]:
            return False
        process = self.processes.get(folder)
        pid = process.pid if process else state["pid"]
        send(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while self.status(folder)["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.status(folder)["running"]:
            send(pid, signal.SIGKILL)
        return True

    def stop_all(self):
        """Jobs end with the server that started them; distilling again resumes them."""
        for folder in list(self.processes):
            self.stop(folder)
