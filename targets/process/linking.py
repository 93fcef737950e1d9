"""Whether libfaketime can move a program's clock: is it dynamically linked?

libfaketime works by LD_PRELOAD, which only the dynamic loader honours: a program whose ELF
file names no interpreter (PT_INTERP), such as a static Go binary, reads the time without
it, and a clock fault on it could only be faked. A script (#!) is judged by its
interpreter. This reads the ELF header and program headers itself (no `ldd`, which may run
the program), through `read(path, nbytes)`, so the file can be on a remote node.
"""
from __future__ import annotations

import struct
from typing import Callable

PT_INTERP = 3
HEADER_BYTES = 4096


def static_reason(path: str, read: Callable[[str, int], bytes],
                  which: Callable[[str], str | None], depth: int = 0) -> str | None:
    """None when the program at path honours LD_PRELOAD; else why not, in a few words."""
    data = read(path, HEADER_BYTES)
    if data.startswith(b"#!") and depth < 4:
        words = data[2:].split(b"\n", 1)[0].split()
        if not words:
            return f"{path} starts with #! but names no interpreter"
        interpreter = words[0].decode(errors="replace")
        if interpreter.endswith("/env") and len(words) > 1:
            name = words[1].decode(errors="replace")
            interpreter = which(name)
            if interpreter is None:
                return f"{path} runs {name}, which is not on the node's PATH"
        return static_reason(interpreter, read, which, depth + 1)
    if not data.startswith(b"\x7fELF"):
        return f"{path} is neither an ELF program nor a #! script"
    return None if has_interpreter(data) else f"{path} is statically linked (no ELF interpreter)"


def has_interpreter(data: bytes) -> bool:
    """Whether an ELF file's first bytes hold a PT_INTERP program header."""
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(endian + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(endian + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)
    for i in range(phnum):
        start = phoff + i * phentsize
        if start + 4 > len(data):
            break  # program headers past what was read: unusual; say static, never fake
        p_type, = struct.unpack_from(endian + "I", data, start)
        if p_type == PT_INTERP:
            return True
    return False
