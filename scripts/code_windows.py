#!/usr/bin/env python3
"""Which functions of a binary run, and in which 64 KiB windows of its code they sit.

    sudo scripts/code_windows.py BINARY -- ARGS...          # e.g. the rss-probe and one image

The kernel maps a program's code around each executed page in 64 KiB fault-around windows (and
whole large folios), so the resident code of a process is roughly the number of windows its
executed functions touch. This registers a uprobe on the entry of every function of BINARY,
runs `BINARY ARGS...` once, and prints, window by window, the functions that ran there (largest
first). It is how the functions in `.text.hot.edgeloop` were chosen (see runtime/src/lib.rs).

Needs root and tracefs (/sys/kernel/tracing); removes its probes when done. Linux x86-64 only.
"""
import os
import re
import subprocess
import sys

TRACING = "/sys/kernel/tracing"
GROUP = "edgeloop_code"
WINDOW = 64 * 1024


def functions(binary):
    """(address, size, name) of every sized function symbol, from nm."""
    out = subprocess.run(["nm", "-n", "-S", "--demangle", binary], capture_output=True, text=True, check=True).stdout
    funcs = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2] in "tTwW" and int(parts[1], 16) > 0:
            funcs.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    return funcs


def exec_segment(binary):
    """(vaddr, file offset) of the executable LOAD segment, from readelf."""
    out = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        p = line.split()
        if p and p[0] == "LOAD" and "E" in p[-2]:
            return int(p[2], 16), int(p[1], 16)
    sys.exit(f"{binary}: no executable LOAD segment")


def write(path, text, append=False):
    """Writes `text` to a tracefs file, one write per line (tracefs parses each on its own)."""
    flags = os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(os.path.join(TRACING, path), flags)
    try:
        for line in text.splitlines(keepends=True) or [text]:
            os.write(fd, line.encode())
    finally:
        os.close(fd)


def main():
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        sys.exit(__doc__)
    binary = os.path.realpath(sys.argv[1])
    args = sys.argv[3:]
    funcs = functions(binary)
    vaddr, offset = exec_segment(binary)
    by_addr = {a: (s, n) for a, s, n in funcs}
    probes = "".join(f"p:{GROUP}/f{a:x} {binary}:0x{a - vaddr + offset:x}\n" for a in sorted(by_addr))
    write("uprobe_events", probes, append=True)
    try:
        write("trace", "")
        write(f"events/{GROUP}/enable", "1")
        write("tracing_on", "1")
        subprocess.run([binary, *args], stdout=subprocess.DEVNULL, check=True)
        write("tracing_on", "0")
        write(f"events/{GROUP}/enable", "0")
        hits = set()
        with open(os.path.join(TRACING, "trace")) as f:
            for line in f:
                m = re.search(rf"\bf([0-9a-f]+):", line) if not line.startswith("#") else None
                if m:
                    hits.add(int(m.group(1), 16))
    finally:
        write(f"events/{GROUP}/enable", "0")
        # Remove only this script's probes.
        with open(os.path.join(TRACING, "uprobe_events")) as f:
            mine = [l.split()[0].split(":", 1)[1] for l in f if f":{GROUP}/" in l]
        for name in mine:
            write("uprobe_events", f"-:{name}\n", append=True)
    windows = {}
    for a in hits:
        windows.setdefault(a // WINDOW, []).append(a)
    total = 0
    for w in sorted(windows):
        ran = sorted(windows[w], key=lambda a: -by_addr[a][0])
        size = sum(by_addr[a][0] for a in ran)
        total += size
        print(f"window {w:3d} [{w * WINDOW:#x}, {(w + 1) * WINDOW:#x}): {len(ran)} functions, {size} bytes run")
        for a in ran[:8]:
            print(f"    {a:#9x} {by_addr[a][0]:6d}  {by_addr[a][1][:110]}")
        if len(ran) > 8:
            print(f"    ... {len(ran) - 8} more")
    print(f"{len(hits)} functions ran ({total // 1024} KiB) in {len(windows)} windows of {WINDOW // 1024} KiB "
          "(link-time addresses; the load address shifts the windows by up to one)")


if __name__ == "__main__":
    main()
