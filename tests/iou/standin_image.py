"""Builds the IOU stand-in image: a tiny static 32-bit x86 ELF that execs the stand-in script with Python.

It is assembled from source by the tests (binutils: `as --32`, `ld -m elf_i386`), never committed. Being a real
32-bit little-endian ELF, it passes the server's image checks exactly as an IOU image does; being static, it needs
no 32-bit libraries. The paths of Python and of the script are written into it, followed by the image's own
arguments, so `<image> -e 1 -L 7` runs `<python> iou_standin.py [--standin-profile=P] -e 1 -L 7`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).with_name("iou_standin.py")

_ASSEMBLY = """\
    .section .rodata
{strings}
failure: .ascii "IOU stand-in: cannot execute {python_text}\\n"
    .set failure_length, . - failure
    .text
    .globl _start
_start:
    movl (%esp), %ecx               # argc
    leal 8(%esp,%ecx,4), %edx       # envp, kept for execve
    movl %esp, %esi
    pushl $0                        # the new argv ends with NULL
    movl %ecx, %ebx
1:  decl %ebx                       # push argv[argc-1] .. argv[1]
    jz 2f
    pushl 4(%esi,%ebx,4)
    jmp 1b
2:
{pushes}
    movl %esp, %ecx                 # new argv
    movl $arg0, %ebx                # the program: Python
    movl $11, %eax                  # execve
    int $0x80
    movl $4, %eax                   # write(2, failure)
    movl $2, %ebx
    movl $failure, %ecx
    movl $failure_length, %edx
    int $0x80
    movl $1, %eax                   # exit(127)
    movl $127, %ebx
    int $0x80
"""


def _asm_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toolchain_missing() -> str | None:
    """Why the image cannot be built here (None when it can)."""
    for tool in ("as", "ld"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (apt-get install binutils)"
    return None


def build_standin_image(target: Path, profile: str | None = None, python: str | None = None) -> Path:
    """Assemble and link the stand-in image at `target` (mode 0755)."""
    fixed = [python or sys.executable, str(SCRIPT)]
    if profile:
        fixed.append(f"--standin-profile={profile}")
    strings = "\n".join(f"arg{i}: .asciz {_asm_string(value)}" for i, value in enumerate(fixed))
    pushes = "\n".join(f"    pushl $arg{i}" for i in reversed(range(len(fixed))))
    source = _ASSEMBLY.format(strings=strings, pushes=pushes, python_text=fixed[0].replace('"', ""))
    with tempfile.TemporaryDirectory(prefix="iou-standin-build-") as work:
        asm, obj = Path(work) / "standin.s", Path(work) / "standin.o"
        asm.write_text(source)
        subprocess.run(["as", "--32", "-o", str(obj), str(asm)], check=True, capture_output=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ld", "-m", "elf_i386", "-static", "-o", str(target), str(obj)], check=True,
                       capture_output=True)
    target.chmod(0o755)
    return target


_LIBRARY = """\
    .text
    .globl iou_standin_missing
iou_standin_missing:
    ret
"""


def build_image_needing_library(target: Path, library: str = "libiou-standin-missing.so.1") -> Path:
    """A 32-bit dynamic ELF linked against a library that is then removed: `ldd` reports it `not found`."""
    with tempfile.TemporaryDirectory(prefix="iou-standin-build-") as work:
        lib_src, lib_obj = Path(work) / "lib.s", Path(work) / "lib.o"
        lib_src.write_text(_LIBRARY)
        subprocess.run(["as", "--32", "-o", str(lib_obj), str(lib_src)], check=True, capture_output=True)
        subprocess.run(["ld", "-m", "elf_i386", "-shared", "-soname", library, "-o", str(Path(work) / library),
                        str(lib_obj)], check=True, capture_output=True)
        main_src, main_obj = Path(work) / "main.s", Path(work) / "main.o"
        main_src.write_text("    .text\n    .globl _start\n_start:\n    movl $1, %eax\n    xorl %ebx, %ebx\n"
                            "    int $0x80\n")
        subprocess.run(["as", "--32", "-o", str(main_obj), str(main_src)], check=True, capture_output=True)
        subprocess.run(["ld", "-m", "elf_i386", "-dynamic-linker", "/lib/ld-linux.so.2", "-o", str(target),
                        str(main_obj), "-L", work, f"-l:{library}"], check=True, capture_output=True)
    target.chmod(0o755)
    return target


def build_image_without_loader(target: Path) -> Path:
    """A 32-bit dynamic ELF whose program interpreter does not exist: what an IOU image is on a host without
    32-bit support (the kernel refuses to run it with ENOENT)."""
    with tempfile.TemporaryDirectory(prefix="iou-standin-build-") as work:
        src, obj = Path(work) / "main.s", Path(work) / "main.o"
        src.write_text("    .text\n    .globl _start\n_start:\n    movl $1, %eax\n    xorl %ebx, %ebx\n    int $0x80\n")
        subprocess.run(["as", "--32", "-o", str(obj), str(src)], check=True, capture_output=True)
        subprocess.run(["ld", "-m", "elf_i386", "-pie", "--dynamic-linker=/lib/ld-iou-standin-absent.so.2", "-o",
                        str(target), str(obj)], check=True, capture_output=True)
    target.chmod(0o755)
    return target
