"""A fork server (zygote) for grading kernels: each student's kernel without the cost of a new Python.

Starting a kernel the usual way (``sandbox.launch`` exec'ing ``python -m ipykernel_launcher``)
costs every student a fresh interpreter that imports ipykernel, IPython, zmq, tornado and NumPy:
about 0.3 s of CPU before the first cell, most of a student's cost. A grading worker instead
starts one zygote per class run (``Zygote``): a Python that has imported those modules from the
kernel's own packages (``kernel_env``'s ``site`` and ``lib``, with the kernel's environment) and
has never run student code, never read a notebook and never seen a connection file.

For each kernel, the ``course-sandbox`` launcher (``sandbox._via_zygote``) connects to the
zygote's socket and hands it the launcher's standard streams and report file. The zygote forks a
*supervisor*, which does what the launcher would (``sandbox.fork_kernel``: the student's kernel
folder, the namespaces, the chroot, the limits, the sandbox user) and forks the kernel, which
starts IPython's kernel in that process (``_run_kernel``) with a clean environment, fresh random
seeds and its own import path. Every student therefore still gets a process of its own, in a
sandbox of its own, forked from a parent that no student's code has touched: nothing one kernel
does (a changed module, a monkeypatch, an environment variable, a file) can reach the next.

The supervisor stands between the launcher and the kernel: an interrupt the launcher gets is
passed on, the kernel's exit status goes back (the launcher exits with it, so jupyter_client sees
the kernel die), and when the launcher is killed (the grader's immediate shutdown) or the zygote
dies, the kernel is killed. A zygote that is gone is restarted for the next student; a launcher
that cannot reach one starts its kernel the usual way.

The zygote holds no thread when it forks (NumPy's BLAS runs single-threaded: ``OMP_NUM_THREADS``
and the like are 1) and refuses to fork if it ever does. Run as a script (``python -S -P
zygote.py SOCKET``); it uses the standard library and ``sandbox.py`` only, loaded by file name.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

#: What the zygote imports once: what every IPython kernel imports before its first cell.
PRELOAD = (
    "numpy",
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.comm",
    "ipykernel.debugger",  # debugpy: 0.1 s of imports when the kernel object is made
    "IPython.core.completer",
    "IPython.core.completerlib",
    "IPython.core.debugger",
    "IPython.extensions.storemagic",
    "sqlite3",  # IPython's history
    "tornado.platform.asyncio",
    "faulthandler",
    "course_lib",
    "course_lib.data",
    "course_lib.gradcheck",
)
READY = b"ready\n"


def _sandbox():
    """sandbox.py: imported normally in the worker, by file name in the zygote (whose import path
    holds only the kernel's packages)."""
    if __package__:
        from course_lib.grading import sandbox

        return sandbox
    if "course_sandbox" not in sys.modules:
        import importlib.util

        path = Path(__file__).with_name("sandbox.py")
        spec = importlib.util.spec_from_file_location("course_sandbox", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["course_sandbox"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["course_sandbox"]


def threads() -> int:
    """Threads of this process (a fork copies only the calling one: there must be no other)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


# --- in the zygote -------------------------------------------------------------------------------


def preload() -> list[str]:
    """Import ``PRELOAD``; return what failed (a kernel then imports it itself)."""
    import importlib

    failed = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - a missing extra: the kernel imports it later
            failed.append(f"{name}: {type(err).__name__}: {err}")
    _fast_cell_names()
    import gc

    gc.collect()
    gc.freeze()  # the forked kernels share these pages instead of copying them on the first GC
    return failed


def _cell_hash(data: str, seed: int) -> int:
    import zlib

    return zlib.crc32(data.encode("utf-8", "surrogatepass"), seed & 0xFFFFFFFF)


def _fast_cell_names() -> None:
    """ipykernel names the file of every executed cell after a murmur2 hash of its source, written
    in pure Python: a fifth of a grading kernel's CPU, as the judge's probes are many and long.
    The name only has to be stable for a debugger frontend to match breakpoints (grading kernels
    have no debugger): CRC-32 gives the same kind of name at C speed."""
    compiler = sys.modules.get("ipykernel.compiler")
    if compiler is not None and hasattr(compiler, "murmur2_x86"):
        compiler.murmur2_x86 = _cell_hash


def serve(path: str, chroot_config: str | None = None) -> None:
    """The zygote: preload, then one supervisor forked per connection, for ever.

    With ``chroot_config`` (a SandboxConfig of level ``chroot``) the zygote first moves into a
    mount namespace and chroot of its own, the kernels' view (``/course/site``, ``/course/lib``):
    the modules it imports then have the very paths a kernel's chroot shows, and nothing of the
    grader's folders is named in them. Each supervisor goes back to the worker's namespace."""
    sb = _sandbox()
    sb._prctl(sb._PR_SET_PDEATHSIG, signal.SIGKILL)  # the worker died: so does its zygote
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)  # in the worker's file system, before any chroot
    os.chmod(path, 0o600)
    worker_ns = None
    if chroot_config:
        config = sb.SandboxConfig.read(chroot_config)
        worker_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        sb.private_root(os.path.join(os.path.dirname(config.kernel_dir), "root"), config)
        import importlib

        sys.path_importer_cache.clear()  # /course/site did not exist when the path was first read
        importlib.invalidate_caches()
    failed = preload()
    for line in failed:
        print(f"zygote: not preloaded: {line}", file=sys.stderr)
    if threads() != 1:
        sys.exit(f"zygote: {threads()} threads after the imports; a fork would copy only one")
    server.listen(8)
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, READY)
    while True:
        conn, _ = server.accept()
        try:
            msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 8)
        except OSError:
            conn.close()
            continue
        if threads() != 1:
            sys.exit("zygote: a thread appeared; refusing to fork")
        pid = os.fork()
        if pid == 0:
            server.close()
            _supervisor(conn, msg, fds, sb, worker_ns)  # never returns
        conn.close()
        for fd in fds:
            os.close(fd)
        del msg, fds
        _reap()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _supervisor(conn: socket.socket, msg: bytes, fds: list[int], sb, worker_ns: int | None) -> None:
    """One kernel: sandbox it (``sandbox.fork_kernel``), then stand between it and the launcher."""
    code = 70
    try:
        conn.sendall(b"S\n")  # from here on the launcher never starts a kernel itself
        sb._prctl(sb._PR_SET_PDEATHSIG, signal.SIGKILL)
        if worker_ns is not None:  # the worker's mounts (the student's quota'd folder), its root
            sb.enter_mount_namespace(worker_ns)
            os.close(worker_ns)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        request = json.loads(msg)
        if len(fds) != 4:
            raise RuntimeError(f"expected 4 descriptors, got {len(fds)}")
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        report = sb._Report(None, dict(request["report"]), fd=fds[3])
        for fd in fds[:3]:
            if fd > 2:
                os.close(fd)
        report.write(zygote=f"forked from the worker's zygote (pid {os.getppid()})")
        config = sb.SandboxConfig.read(request["config"])
        kernel = sb.fork_kernel(config, request["connection"], list(request["extra"]), report,
                                _run_kernel, close_in_child=(conn,))  # fmt: skip
        code = _watch(kernel, conn)
    except BaseException as err:  # noqa: BLE001 - reported; the launcher exits with 70
        try:
            report.write(error=f"the zygote could not start the kernel: {type(err).__name__}: {err}")
        except Exception:  # noqa: BLE001 - no report yet
            pass
    try:
        conn.sendall(f"X{code}\n".encode())
    finally:
        os._exit(0)


def _watch(kernel: int, conn: socket.socket) -> int:
    """Pass interrupts on until the kernel exits (its status) or the launcher goes (kill it)."""
    pidfd = os.pidfd_open(kernel)
    while True:
        ready, _, _ = select.select([conn, pidfd], [], [])
        if conn in ready:
            data = conn.recv(64)
            if not data:  # the launcher was killed: so is the kernel (and its PID namespace)
                os.kill(kernel, signal.SIGKILL)
                os.waitpid(kernel, 0)
                return 137
            for _ in range(data.count(b"I")):
                os.kill(kernel, signal.SIGINT)
        if pidfd in ready:
            _, status = os.waitpid(kernel, 0)
            return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _run_kernel(config, home: str, connection: str, extra: list[str]) -> None:
    """In the forked kernel process, sandboxed already: become a fresh IPython kernel."""
    import importlib
    import random

    sb = _sandbox()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sb._close_inherited()
    stdlib = [p for p in sys.path if p not in _kernel_paths()]
    env = sb.kernel_env(config, home)
    os.environ.clear()
    os.environ.update(env)
    sys.path[:] = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p] + stdlib
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    sys.argv = [os.path.join(home, "ipykernel_launcher"), "-f", connection, *extra]
    sys.modules.pop("course_sandbox", None)
    import tempfile

    tempfile.tempdir = None
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()  # the legacy global generator, as a fresh import seeds it
    from ipykernel import kernelapp

    code = 0
    try:
        kernelapp.launch_new_instance(argv=sys.argv[1:])
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    sys.stdout.flush()
    os._exit(code)


def _kernel_paths() -> set[str]:
    return {p for p in os.environ.get("COURSE_ZYGOTE_PATH", "").split(os.pathsep) if p}


# --- in the worker -------------------------------------------------------------------------------


def key(config) -> tuple:
    """What a zygote depends on: the interpreter, the kernel's packages, and whether kernels are
    chrooted (then the zygote is too)."""
    return (config.python, config.site_dir, config.lib_dir, config.level == "chroot",
            tuple(config.readonly_paths))  # fmt: skip


class Zygote:
    """A worker's zygote for one kernel environment (``site``, ``lib``, interpreter)."""

    def __init__(self, folder: Path, config) -> None:
        self.folder, self.config = Path(folder), config
        self.key = key(config)
        self.socket = str(self.folder / "zygote.sock")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> bool:
        """Start it and wait until it listens; False (and nothing left running) when it cannot."""
        from course_lib.grading.sandbox import KERNEL_HOME, SandboxConfig, kernel_env

        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        home = self.folder / "env"
        (home / "home").mkdir(parents=True, exist_ok=True)
        chroot = self.config.level == "chroot"
        cfg = SandboxConfig(level=self.config.level if chroot else "none", kernel_dir=str(home), report="",
                            python=self.config.python, site_dir=self.config.site_dir,
                            lib_dir=self.config.lib_dir, readonly_paths=list(self.config.readonly_paths),
                            tmp_size_mb=16)  # fmt: skip
        env = kernel_env(cfg, KERNEL_HOME if chroot else str(home))  # as the zygote sees its home
        argv = [self.config.python, "-S", "-P", os.path.abspath(__file__), self.socket]
        if chroot:
            cfg.write(self.folder / "zygote-config.json")
            argv.append(str(self.folder / "zygote-config.json"))
        env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # as ipykernel sets it
        env["COURSE_ZYGOTE_PATH"] = env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, cwd=str(home),
        )  # fmt: skip
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if ready and self.proc.stdout.readline() == READY:
            return True
        self.stop()
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and os.path.exists(self.socket)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
