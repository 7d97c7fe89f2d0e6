"""The kernel sandbox: what a student's code can see, touch and use while it is graded.

``course grade`` runs nbgrader as the instructor (often root) and gives every student's notebook a
kernel started through this launcher, named in a kernelspec (``course-sandbox``)::

    python -I -S .../course_lib/grading/sandbox.py {connection_file} [kernel arguments ...]

It reads the student's ``SandboxConfig`` (JSON, path in ``$COURSE_SANDBOX_CONFIG``) and, before
it ``exec``s ``python -m ipykernel_launcher``, applies the strongest isolation the machine allows:

``chroot`` (root, Linux namespaces available)
    New mount, PID, IPC, UTS and network namespaces (the network one when the machine allows it:
    then the kernel has no network at all, not even another kernel's loopback ports). The kernel's
    ``/`` is an empty read-only tmpfs into which only this is bind-mounted, read-only: the system
    folders (/usr, /etc, and /bin, /lib... or their links) with every ``site-packages`` and
    ``dist-packages`` folder in them hidden, the interpreter's standard library, the kernel's
    packages one by one (``/course/site``, see ``kernel_env.py``: no torch, scipy or scikit-learn),
    the grading copy of ``course_lib`` (``/course/lib``), the data folders listed in the config;
    plus the student's own writable folder (``/course/kernel``, the working directory, where the
    kernel's IPC sockets live too), a private ``/tmp`` and ``/dev/shm`` (tmpfs) and a private
    ``/proc``. Solutions, judges, the repository, the gradebook, nbgrader's folders and every other
    student are simply not there. The kernel is PID 1 of its namespace: when it ends, every
    process it started ends.
``user`` (root, no namespaces)
    The privilege drop and limits below only: file permissions are the only wall (the grading
    folders are private to root; a world-readable repository stays readable).
``none`` (not root)
    Limits only; the kernel runs as the instructor.

In every mode the kernel gets a clean environment, ``RLIMIT_AS`` (memory), ``RLIMIT_FSIZE``,
``RLIMIT_NPROC`` (per sandbox user) and no core files; as root it runs as an unprivileged
``course-grader-<slot>`` user (one per parallel worker, so that one student's processes never
share a user with another running student), with no supplementary groups and ``no_new_privs``.
It runs ``python -S`` with ``PYTHONPATH`` naming only the kernel's packages and the grading copy
of the library, and it holds no file descriptor but its standard streams (which the worker
reads through a pipe) and what it opens itself. The worker talks to it over IPC sockets in the
student's own folder, signed with the connection's key, never over TCP.

The launcher writes what it did (or why it failed) to ``report`` in the config; the grader reads
it to prove that the kernel really ran sandboxed. This module uses the standard library only.
"""

from __future__ import annotations

import ctypes
import grp
import json
import os
import pwd
import resource
import shutil
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Levels, strongest first.
LEVELS = ("chroot", "user", "none")

#: Where the student's writable folder appears inside the chroot.
KERNEL_HOME = "/course/kernel"
#: Where the kernel's packages and the grading copy of course_lib appear inside the chroot.
KERNEL_SITE = "/course/site"
KERNEL_LIB = "/course/lib"

#: The environment variable that names the per-student config file.
CONFIG_ENV = "COURSE_SANDBOX_CONFIG"

SANDBOX_GROUP = "course-grader"

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38

#: System folders bound read-only into the chroot (those that exist; links are copied as links).
SYSTEM_PATHS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Device files the kernel may use.
DEVICES = ("null", "zero", "full", "random", "urandom")


class SandboxError(RuntimeError):
    """The sandbox could not be set up; the message says which step failed."""


@dataclass
class SandboxConfig:
    """What one kernel may see and use. Written by the grader, read by the launcher."""

    level: str  # "chroot", "user" or "none"
    kernel_dir: str  # the student's writable folder (home/, work/), created by the grader
    report: str  # where the launcher writes what it did (JSON)
    uid: int | None = None  # run the kernel as this user (root only)
    gid: int | None = None
    user: str = "student"
    memory_mb: int = 2048  # RLIMIT_AS of the kernel (and of what it starts)
    file_size_mb: int = 256  # RLIMIT_FSIZE: the largest file the kernel may write
    nproc: int = 256  # RLIMIT_NPROC: processes and threads of the sandbox user
    tmp_size_mb: int = 256  # size of the private /tmp (chroot)
    readonly_paths: list[str] = field(default_factory=list)  # data folders
    site_dir: str | None = None  # kernel_env's site/: the packages a kernel may import
    lib_dir: str | None = None  # kernel_env's lib/: the grading copy of course_lib
    python: str = os.path.realpath(sys.executable)  # the interpreter that runs ipykernel (-S)
    network: bool = False  # chroot: keep the machine's network (default: a namespace of its own)
    env: dict[str, str] = field(default_factory=dict)  # extra environment of the kernel
    zygote: str | None = None  # the worker's fork server (zygote.py): its socket; None: exec a kernel

    def write(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def read(cls, path: Path | str) -> SandboxConfig:
        return cls(**json.loads(Path(path).read_text()))


# --- users -------------------------------------------------------------------------------------


def ensure_sandbox_user(slot: int) -> tuple[str, int, int]:
    """The unprivileged user ``course-grader-<slot>`` (created with useradd when missing).

    Returns (name, uid, gid). Needs root to create; raises SandboxError when it cannot.
    """
    name = f"{SANDBOX_GROUP}-{slot}"
    try:
        entry = pwd.getpwnam(name)
        return name, entry.pw_uid, entry.pw_gid
    except KeyError:
        pass
    try:
        grp.getgrnam(SANDBOX_GROUP)
    except KeyError:
        _run_quiet(["groupadd", "--system", SANDBOX_GROUP])
    _run_quiet(
        [
            "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
            "--shell", "/usr/sbin/nologin", "--gid", SANDBOX_GROUP, name,
        ]
    )  # fmt: skip
    try:
        entry = pwd.getpwnam(name)
    except KeyError as err:
        raise SandboxError(f"useradd did not create {name}") from err
    return name, entry.pw_uid, entry.pw_gid


def _run_quiet(cmd: list[str]) -> None:
    import subprocess

    if shutil.which(cmd[0]) is None:
        raise SandboxError(f"`{cmd[0]}` is not installed: cannot create the sandbox user")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 9):  # 9: already exists (a concurrent run made it)
        raise SandboxError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()}")


# --- libc --------------------------------------------------------------------------------------

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)  # the C library this Python is linked with
        _libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
        _libc.unshare.argtypes = [ctypes.c_int]
        _libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    return _libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(err)} (errno {err})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None):
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_c().mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def enter_mount_namespace(fd: int) -> None:
    """Join the mount namespace open at ``fd`` (its root and working folder become the process's)."""
    _c().setns.argtypes = [ctypes.c_int, ctypes.c_int]
    _check(_c().setns(fd, _CLONE_NEWNS), "setns")


def private_root(root: str, config: SandboxConfig) -> None:
    """A mount namespace of this process's own, chrooted into the kernel's view of the file system
    (``build_root``): what a zygote imports then has the paths a chroot kernel sees."""
    _check(_c().unshare(_CLONE_NEWNS), "unshare")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    os.makedirs(root, exist_ok=True)
    build_root(root, config)
    os.chroot(root)
    os.chdir("/")


def _prctl(option: int, value: int) -> None:
    _check(_c().prctl(option, value, 0, 0, 0), f"prctl({option})")


# --- the worker's own mounts: a disk quota per student -------------------------------------------

_PRIVATE: bool | None = None
_MNT_DETACH = 2


def private_mounts() -> bool:
    """Give this process (a grading worker, as root) a mount namespace of its own, once; True when
    it has one. Mounts made in it are invisible to the rest of the machine and vanish with the
    process, however it ends."""
    global _PRIVATE
    if _PRIVATE is None:
        _PRIVATE = False
        if os.geteuid() == 0 and _c().unshare(_CLONE_NEWNS) == 0:
            try:
                _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
                _PRIVATE = True
            except SandboxError:
                _PRIVATE = False
    return _PRIVATE


def quota_mount(path: Path | str, size_mb: int) -> None:
    """A tmpfs of ``size_mb`` at ``path``: everything a student's kernel writes there (files,
    its home, its sockets) counts against one total."""
    _mount("tmpfs", str(path), "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode=0711,size={int(size_mb)}m")


def unmount(path: Path | str) -> None:
    """Undo ``quota_mount`` (nothing happens when ``path`` is not a mount point)."""
    if os.path.ismount(str(path)):
        _c().umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        _c().umount2(str(path).encode(), _MNT_DETACH)


# --- the chroot --------------------------------------------------------------------------------


def _bind(source: str, target: str, *, readonly: bool) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Path(target).touch()
    _mount(source, target, None, _MS_BIND | _MS_REC)
    if readonly:
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
        _mount(None, target, None, flags)


def _under(path: str, parents: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


def interpreter_prefix(python: str) -> str:
    """The installation the interpreter ``python`` belongs to (``bin/..``): its standard library
    and shared libraries are bound into the chroot; its site-packages are hidden."""
    return os.path.dirname(os.path.dirname(os.path.realpath(python)))


_PACKAGE_FOLDERS = (
    "lib/python3*/site-packages",
    "lib/python3*/dist-packages",
    "lib/python3/dist-packages",
    "local/lib/python3*/site-packages",
    "local/lib/python3*/dist-packages",
)


def package_folders(bound: list[str]) -> list[str]:
    """Every site-packages / dist-packages folder inside the bound folders: hidden in the chroot."""
    import glob

    found = []
    for top in bound:
        for pattern in _PACKAGE_FOLDERS:
            for path in glob.glob(os.path.join(top, pattern)):
                if os.path.isdir(path) and not os.path.islink(path):
                    found.append(path)
    return sorted(set(found))


def site_mounts(site_dir: str) -> list[tuple[str, str]]:
    """(real source, name) of each entry of a kernel_env site folder (links resolved)."""
    return [(os.path.realpath(os.path.join(site_dir, n)), n) for n in sorted(os.listdir(site_dir))]


def build_root(root: str, config: SandboxConfig) -> list[str]:
    """Fill the empty folder ``root`` (in a private mount namespace) with the kernel's view of the
    file system; returns what was mounted. The caller then chroots into it."""
    done: list[str] = []
    _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=755,size=4m")
    # The private /tmp and /dev/shm first: what is bound below stays visible even when it lives
    # under /tmp (a repository or a venv cloned there), instead of being hidden by the tmpfs.
    for tmp, size in (("/tmp", config.tmp_size_mb), ("/dev/shm", 64)):
        os.makedirs(root + tmp, exist_ok=True)
        _mount("tmpfs", root + tmp, "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode=1777,size={size}m")
        done.append(f"{tmp} (private tmpfs, {size} MB)")
    bound: list[str] = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
        elif os.path.isdir(path):
            _bind(path, root + path, readonly=True)
            bound.append(path)
    for path in sorted(
        {os.path.realpath(p) for p in [interpreter_prefix(config.python), *config.readonly_paths]}, key=len
    ):
        if os.path.exists(path) and not _under(path, bound):
            _bind(path, root + path, readonly=True)
            bound.append(path)
    done += bound
    for path in package_folders(bound):  # no package but the kernel's own can be imported
        _mount("tmpfs", root + path, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_RDONLY, "mode=755,size=4k")
        done.append(f"{path} (hidden)")
    if config.site_dir:
        for source, name in site_mounts(config.site_dir):
            _bind(source, f"{root}{KERNEL_SITE}/{name}", readonly=True)
        done.append(f"{KERNEL_SITE} ({len(os.listdir(config.site_dir))} entries of {config.site_dir})")
    if config.lib_dir:
        _bind(config.lib_dir, root + KERNEL_LIB, readonly=True)
        done.append(f"{config.lib_dir} -> {KERNEL_LIB}")
    _bind(config.kernel_dir, root + KERNEL_HOME, readonly=False)
    done.append(f"{config.kernel_dir} -> {KERNEL_HOME} (rw)")
    os.makedirs(root + "/var", exist_ok=True)
    os.symlink("/tmp", root + "/var/tmp")
    for dev in DEVICES:
        if os.path.exists(f"/dev/{dev}"):
            _bind(f"/dev/{dev}", f"{root}/dev/{dev}", readonly=False)
    os.symlink("/proc/self/fd", root + "/dev/fd")
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", f"{root}/dev/{name}")
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("proc", root + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    done.append("/proc (private)")
    # Nothing else is writable: the skeleton itself becomes read-only.
    _mount(None, root, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, "mode=755,size=4m")
    return done


# --- launching the kernel ----------------------------------------------------------------------


def kernel_env(config: SandboxConfig, home: str) -> dict[str, str]:
    """A clean environment: nothing of the instructor's (tokens, paths) reaches student code."""
    bindir = os.path.dirname(config.python)
    env = {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": f"{home}/home",
        "USER": config.user,
        "LOGNAME": config.user,
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp" if config.level == "chroot" else f"{home}/home",
        "IPYTHONDIR": f"{home}/home/.ipython",
        "MPLCONFIGDIR": f"{home}/home/.matplotlib",
        "JUPYTER_RUNTIME_DIR": f"{home}/home/.jupyter-runtime",
        "JUPYTER_CONFIG_DIR": f"{home}/home/.jupyter",
        "JUPYTER_DATA_DIR": f"{home}/home/.jupyter-data",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    if config.site_dir or config.lib_dir:
        if config.level == "chroot":
            paths = [p for p, on in ((KERNEL_SITE, config.site_dir), (KERNEL_LIB, config.lib_dir)) if on]
        else:
            paths = [p for p in (config.site_dir, config.lib_dir) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(config.env)
    return env


def _limits(config: SandboxConfig) -> None:
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (config.memory_mb * mb, config.memory_mb * mb))
    resource.setrlimit(resource.RLIMIT_FSIZE, (config.file_size_mb * mb, config.file_size_mb * mb))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if config.uid is not None:  # NPROC counts the user's processes: only with a dedicated user
        resource.setrlimit(resource.RLIMIT_NPROC, (config.nproc, config.nproc))


def _drop_privileges(config: SandboxConfig) -> None:
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    if config.uid is None:
        return
    os.setgroups([])
    os.setgid(config.gid if config.gid is not None else config.uid)
    os.setuid(config.uid)
    if os.getuid() != config.uid or os.geteuid() != config.uid:
        raise SandboxError("could not drop privileges")


def _exec_kernel(config: SandboxConfig, home: str, connection: str, extra: list[str]) -> None:
    isolated = ["-S"] if (config.site_dir or config.lib_dir) else []
    argv = [config.python, *isolated, "-m", "ipykernel_launcher", "-f", connection, *extra]
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _close_inherited()
    os.execve(config.python, argv, kernel_env(config, home))


def _close_inherited() -> None:
    """Close every descriptor but the standard streams: the kernel holds nothing of the grader's."""
    try:
        limit = os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        limit = 4096
    os.closerange(3, limit if limit > 0 else 4096)


def _prepare_kernel_dir(config: SandboxConfig, connection_file: str) -> str:
    """Copy the connection file where the kernel user can read it; return its new path."""
    kdir = config.kernel_dir
    for sub in ("home", "work"):
        os.makedirs(os.path.join(kdir, sub), exist_ok=True)
    dest = os.path.join(kdir, "connection.json")
    info = json.loads(Path(connection_file).read_text())
    if info.get("transport") == "ipc" and config.level == "chroot":
        ip = str(info.get("ip", ""))
        real = os.path.realpath(kdir)
        if ip.startswith(real + "/"):  # the kernel sees its folder at KERNEL_HOME
            info["ip"] = KERNEL_HOME + ip[len(real) :]
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh)
    if config.uid is not None:
        subs = [
            os.path.join(kdir, s) for s in ("home", "work", "ipc") if os.path.isdir(os.path.join(kdir, s))
        ]
        for path in (kdir, *subs, dest):
            os.chown(path, config.uid, config.gid if config.gid is not None else config.uid)
        os.chmod(kdir, 0o700)
    return dest


class _Report:
    """The launcher's report, through a descriptor opened while still root and outside the
    chroot, so that failures after the privilege drop or the chroot are reported too. The
    descriptor is close-on-exec: the kernel never holds it."""

    def __init__(self, path: str | None, data: dict, fd: int | None = None):
        if fd is None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        self.fd = fd
        self.data = data
        self.write()

    def write(self, **more) -> None:
        self.data.update(more)
        raw = json.dumps(self.data, indent=1).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, raw, 0)


def launch(config: SandboxConfig, connection_file: str, extra: list[str]) -> None:
    """Start the sandboxed kernel; does not return (exec, or exit with the kernel's status)."""
    os.umask(0o022)
    try:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # the grader died: so does the kernel
    except SandboxError:
        pass
    report = _Report(config.report, {"level": config.level, "pid": os.getpid(), "uid": config.uid})
    if config.zygote:
        _via_zygote(config, connection_file, extra, report)  # returns only if the zygote is gone
    try:
        connection = _prepare_kernel_dir(config, connection_file)
    except OSError as err:
        report.write(error=f"preparing the kernel folder: {err}")
        os._exit(70)
    if config.level != "chroot":
        _plain(config, connection, extra, report, _exec_kernel)
    # chroot: new namespaces; the forked child is PID 1 of the new PID namespace.
    try:
        _unshare(config, report)
    except SandboxError as err:
        report.write(error=str(err))
        os._exit(70)
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        _inner(config, connection, extra, report, alive_r, _exec_kernel)
        os._exit(70)  # not reached
    os.close(alive_r)
    _supervise(pid)


def _unshare(config: SandboxConfig, report: _Report) -> None:
    """New mount, PID, IPC, UTS (and, unless ``network``, network) namespaces for the children."""
    flags = _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWUTS
    network = "shared (--sandbox-network)" if config.network else "none (own namespace)"
    if config.network or _c().unshare(flags | _CLONE_NEWNET) != 0:
        if not config.network:
            network = f"shared (no network namespace here: {os.strerror(ctypes.get_errno())})"
        _check(_c().unshare(flags), "unshare")
    report.write(network=network)


def _plain(config: SandboxConfig, connection: str, extra: list[str], report: _Report, start) -> None:
    """The ``user`` and ``none`` levels: limits, the privilege drop, then ``start`` the kernel."""
    try:
        _limits(config)
        _drop_privileges(config)
        if config.uid is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # setuid cleared it
        os.chdir(os.path.join(config.kernel_dir, "work"))
        report.write(started=True)
        start(config, config.kernel_dir, connection, extra)
    except (OSError, SandboxError) as err:
        report.write(error=f"{type(err).__name__}: {err}")
    os._exit(70)


def fork_kernel(config: SandboxConfig, connection_file: str, extra: list[str], report: _Report,
                start, close_in_child=()) -> int:  # fmt: skip
    """What ``launch`` does, for a fork server (``zygote.py``): the same folder, namespaces, chroot,
    limits and user, but the forked child calls ``start(config, home, connection, extra)`` (an
    IPython kernel in that process) instead of exec'ing one. Returns the child's pid; the caller
    supervises it. Raises OSError or SandboxError when a step before the fork fails."""
    os.umask(0o022)
    connection = _prepare_kernel_dir(config, connection_file)
    if config.level == "chroot":
        _unshare(config, report)
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(alive_w)
            for thing in close_in_child:
                thing.close()
            if config.level == "chroot":
                _inner(config, connection, extra, report, alive_r, start)
            os.close(alive_r)
            _plain(config, connection, extra, report, start)
        except BaseException as err:  # noqa: BLE001 - never back into the fork server's loop
            report.write(error=f"{type(err).__name__}: {err}")
        os._exit(70)
    os.close(alive_r)
    return pid


def _via_zygote(config: SandboxConfig, connection_file: str, extra: list[str], report: _Report) -> None:
    """Ask the worker's zygote for the kernel: it forks one, sandboxed as ``launch`` would, with this
    launcher's standard streams and report. This process then stands for the kernel: an interrupt
    (SIGINT) is passed on, its exit is the kernel's, and the kernel dies when it dies. Returns only
    when the zygote is not there or refused before starting anything (then ``launch`` goes on)."""
    import socket

    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(config.zygote)
        request = {"config": os.environ.get(CONFIG_ENV, ""), "connection": connection_file,
                   "extra": extra, "report": report.data}  # fmt: skip
        socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2, report.fd])
        reader = conn.makefile("rb")
        first = reader.readline()
    except OSError as err:
        report.write(zygote=f"not used: {err}")
        return
    if not first.startswith(b"S"):
        report.write(zygote="not used: it closed the connection")
        return
    signal.signal(signal.SIGINT, lambda *_: conn.send(b"I"))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: os._exit(128 + signum))
    for line in reader:
        if line.startswith(b"X"):
            os._exit(int(line[1:]))
    os._exit(70)  # the supervisor vanished: so did the kernel


def _supervise(child: int) -> None:
    """The outer launcher: wait for PID 1, pass on its fate; ignore interrupts (they reach the
    kernel directly: jupyter_client signals the whole process group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _terminate(signum, _frame):
        try:
            os.kill(child, signal.SIGKILL)
        finally:
            os._exit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def _inner(config: SandboxConfig, connection: str, extra: list[str], report: _Report, alive: int,
           start=None) -> None:  # fmt: skip
    try:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        root = os.path.join(os.path.dirname(config.kernel_dir), "root")
        os.makedirs(root, exist_ok=True)
        report.write(mounts=build_root(root, config))
        os.chroot(root)
        os.chdir(KERNEL_HOME + "/work")
        _limits(config)
        _drop_privileges(config)
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # setuid cleared it
        os.set_blocking(alive, False)
        try:
            if os.read(alive, 1) == b"":
                os._exit(0)  # the launcher died meanwhile
        except BlockingIOError:
            pass
        os.close(alive)
        report.write(started=True)
        (start or _exec_kernel)(config, KERNEL_HOME, KERNEL_HOME + "/connection.json", extra)
    except BaseException as err:  # noqa: BLE001 - anything: report it, never run unsandboxed
        try:
            report.write(error=f"{type(err).__name__}: {err}")
        finally:
            os._exit(70)


# --- probing -----------------------------------------------------------------------------------


#: This file, run as a script: ``-I -S`` skips site-packages, so the launcher starts in ~20 ms.
LAUNCHER = os.path.abspath(__file__)


def kernelspec(python: str = sys.executable) -> dict:
    """The ``course-sandbox`` kernelspec (kernel.json) that starts kernels through ``launch``."""
    return {
        "argv": [python, "-I", "-S", LAUNCHER, "{connection_file}"],
        "display_name": "Python 3 (course sandbox)",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": False},
    }


def run_probe(config: SandboxConfig, code: str, timeout: float = 60) -> tuple[bool, str]:
    """Run ``python -c code`` through the sandbox with ``config`` (no kernel); return (ok, output)."""
    import subprocess

    cmd = [sys.executable, "-I", "-S", LAUNCHER, "--probe", code]
    env = dict(os.environ, **{CONFIG_ENV: ""})
    cfg_path = os.path.join(os.path.dirname(config.kernel_dir), "probe-config.json")
    config.write(cfg_path)
    env[CONFIG_ENV] = cfg_path
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return False, f"the probe ran past {timeout} s"
    out = (proc.stdout + proc.stderr).strip()
    try:
        rep = json.loads(Path(config.report).read_text())
        if rep.get("error"):
            out = f"{rep['error']}\n{out}".strip()
    except (OSError, ValueError):
        pass
    return proc.returncode == 0, out


def _probe_main(code: str) -> None:
    """``--probe CODE``: like ``launch`` but runs ``python -c CODE`` instead of a kernel."""
    config = SandboxConfig.read(os.environ[CONFIG_ENV])
    global _exec_kernel

    def _exec_probe(cfg: SandboxConfig, home: str, _connection: str, _extra: list[str]) -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(cfg.python, [cfg.python, "-c", code], kernel_env(cfg, home))

    _exec_kernel = _exec_probe
    dummy = os.path.join(os.path.dirname(config.kernel_dir), "probe-connection.json")
    Path(dummy).write_text("{}")
    launch(config, dummy, [])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:
        _probe_main(argv[1])
        return
    path = os.environ.get(CONFIG_ENV)
    if not path or not argv:
        print(
            f"usage: {CONFIG_ENV}=config.json python -m course_lib.grading.sandbox CONNECTION_FILE",
            file=sys.stderr,
        )
        sys.exit(2)
    launch(SandboxConfig.read(path), argv[0], argv[1:])


if __name__ == "__main__":
    main()
