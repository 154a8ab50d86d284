"""The seccomp filter every sandboxed agent runs under, as the classic BPF program `bwrap --seccomp FD` loads.

It denies (EPERM) the calls an agent has no use for and that would let it reach past its sandbox:
inspecting or changing another process (ptrace, process_vm_*, pidfd_getfd, kcmp: the pid
namespace's init, whose parent-death signal ties the sandbox to the daemon, is the target that
matters), rearranging mounts and namespaces, the kernel's keyrings, BPF, perf and module loading.
Everything else is allowed. Calls of a foreign ABI (i386 or x32 on x86_64, arm32 on aarch64) are
denied whole (ENOSYS): a filter that checks only native numbers is bypassed through them.

Built by hand rather than with libseccomp: the program is a straight list of comparisons, and the
daemon then needs no native library at run time (a ctypes `find_library` does not find one on
NixOS). The syscall numbers are checked against libseccomp's own tables by the tests.
"""

import errno
import os
import platform
import struct
from dataclasses import dataclass

# linux/filter.h, linux/seccomp.h, linux/audit.h
BPF_LD_W_ABS = 0x20
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JGE_K = 0x35
BPF_RET_K = 0x06
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_DATA_NR = 0
SECCOMP_DATA_ARCH = 4
X32_SYSCALL_BIT = 0x40000000

# Why each call is denied; the numbers per architecture are below.
DENIED: dict[str, str] = {
    "ptrace": "inspect or rewrite another process, e.g. clear the sandbox init's parent-death signal",
    "process_vm_readv": "read another process's memory",
    "process_vm_writev": "write another process's memory",
    "pidfd_getfd": "steal another process's file descriptors",
    "process_madvise": "act on another process's memory",
    "kcmp": "compare kernel objects of other processes",
    "perf_event_open": "profile other processes or the kernel",
    "bpf": "load programs into the kernel",
    "userfaultfd": "stall the kernel on page faults (a race-exploit helper)",
    "keyctl": "the kernel keyrings are not namespaced",
    "add_key": "the kernel keyrings are not namespaced",
    "request_key": "the kernel keyrings are not namespaced",
    "mount": "rearrange the sandbox's mounts",
    "umount2": "uncover what the sandbox hides",
    "pivot_root": "rearrange the sandbox's mounts",
    "move_mount": "rearrange the sandbox's mounts",
    "open_tree": "rearrange the sandbox's mounts",
    "fsopen": "rearrange the sandbox's mounts",
    "fsconfig": "rearrange the sandbox's mounts",
    "fsmount": "rearrange the sandbox's mounts",
    "fspick": "rearrange the sandbox's mounts",
    "mount_setattr": "rearrange the sandbox's mounts",
    "unshare": "make new namespaces",
    "setns": "enter other namespaces",
    "open_by_handle_at": "open files by handle, around the mount tree",
    "init_module": "load kernel modules",
    "finit_module": "load kernel modules",
    "delete_module": "unload kernel modules",
    "kexec_load": "replace the kernel",
    "kexec_file_load": "replace the kernel",
    "reboot": "reboot the host",
    "swapon": "change the host's swap",
    "swapoff": "change the host's swap",
    "acct": "switch process accounting",
    "syslog": "read the kernel log",
}

_X86_64 = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
    "process_madvise": 440, "kcmp": 312, "perf_event_open": 298, "bpf": 321, "userfaultfd": 323,
    "keyctl": 250, "add_key": 248, "request_key": 249, "mount": 165, "umount2": 166, "pivot_root": 155,
    "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "unshare": 272, "setns": 308, "open_by_handle_at": 304, "init_module": 175,
    "finit_module": 313, "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320, "reboot": 169,
    "swapon": 167, "swapoff": 168, "acct": 163, "syslog": 103,
}  # fmt: skip
_AARCH64 = {
    "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "pidfd_getfd": 438,
    "process_madvise": 440, "kcmp": 272, "perf_event_open": 241, "bpf": 280, "userfaultfd": 282,
    "keyctl": 219, "add_key": 217, "request_key": 218, "mount": 40, "umount2": 39, "pivot_root": 41,
    "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "unshare": 97, "setns": 268, "open_by_handle_at": 265, "init_module": 105,
    "finit_module": 273, "delete_module": 106, "kexec_load": 104, "kexec_file_load": 294, "reboot": 142,
    "swapon": 224, "swapoff": 225, "acct": 89, "syslog": 116,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Arch:
    """One architecture's audit token and syscall numbers."""

    name: str
    audit_arch: int
    numbers: dict[str, int]
    x32_bit: bool  # x86_64 also carries the x32 ABI, marked by a bit in the number


ARCHES = {
    "x86_64": Arch("x86_64", 0xC000003E, _X86_64, x32_bit=True),
    "aarch64": Arch("aarch64", 0xC00000B7, _AARCH64, x32_bit=False),
}


def native_arch() -> Arch | None:
    """This machine's architecture, or None when the filter has no table for it."""
    machine = platform.machine()
    return ARCHES.get({"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine))


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(arch: Arch) -> bytes:
    """The BPF program for `arch`: a struct sock_filter array, as bwrap reads it."""
    numbers = sorted({arch.numbers[name] for name in DENIED})
    deny_foreign = SECCOMP_RET_ERRNO | errno.ENOSYS
    program = [
        _insn(BPF_LD_W_ABS, SECCOMP_DATA_ARCH),
        _insn(BPF_JMP_JEQ_K, arch.audit_arch, jt=1),
        _insn(BPF_RET_K, deny_foreign),
        _insn(BPF_LD_W_ABS, SECCOMP_DATA_NR),
    ]
    if arch.x32_bit:
        program += [_insn(BPF_JMP_JGE_K, X32_SYSCALL_BIT, jf=1), _insn(BPF_RET_K, deny_foreign)]
    # Each comparison jumps to the EPERM return at the end; falling through all of them allows.
    for i, number in enumerate(numbers):
        program.append(_insn(BPF_JMP_JEQ_K, number, jt=len(numbers) - i))
    program += [_insn(BPF_RET_K, SECCOMP_RET_ALLOW), _insn(BPF_RET_K, SECCOMP_RET_ERRNO | errno.EPERM)]
    return b"".join(program)


def filter_fd(arch: Arch) -> int:
    """A memfd holding the program, positioned at its start, for `bwrap --seccomp FD` (the caller closes it)."""
    fd = os.memfd_create("hyperhive-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, build_filter(arch))
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
