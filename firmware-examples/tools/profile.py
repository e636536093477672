#!/usr/bin/env python3
"""Flat instruction profile of a firmware run in QEMU, by function.

Run the firmware with the instruction-count plugin's `profile=PATH` argument, e.g.

    cc -shared -fPIC -O2 -o insn.so tools/insn-count.c
    qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none \\
        -semihosting-config enable=on,target=native -kernel ELF \\
        -plugin ./insn.so,profile=prof.txt > /dev/null
    python3 tools/profile.py ELF prof.txt

and this prints the executed instructions per function (symbols from `llvm-nm` or binutils
`nm`, demangled), largest first, with each function's share of the total.
"""
import argparse
import bisect
import shutil
import subprocess
import sys


def symbols(elf):
    nm = shutil.which("llvm-nm") or shutil.which("nm")
    if nm is None:
        sys.exit("profile.py: needs llvm-nm or nm")
    out = subprocess.run(
        [nm, "--print-size", "--demangle", "--defined-only", elf],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) < 4 or parts[2] not in "tTwW":
            continue
        start, size = int(parts[0], 16) & ~1, int(parts[1], 16)
        if size:
            syms.append((start, start + size, parts[3]))
    syms.sort()
    return syms


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("elf")
    ap.add_argument("profile", help="the plugin's profile= output: '<address hex> <count>' lines")
    ap.add_argument("--top", type=int, default=40, help="functions to print (default 40)")
    args = ap.parse_args()
    syms = symbols(args.elf)
    starts = [s[0] for s in syms]
    per = {}
    total = 0
    with open(args.profile) as f:
        for line in f:
            addr_s, count_s = line.split()
            addr, count = int(addr_s, 16), int(count_s)
            total += count
            k = bisect.bisect_right(starts, addr) - 1
            name = "?"
            if k >= 0 and syms[k][0] <= addr < syms[k][1]:
                name = syms[k][2]
            per[name] = per.get(name, 0) + count
    if total == 0:
        sys.exit("profile.py: the profile is empty")
    print(f"{'instructions':>14} {'share':>7}  function")
    for name, count in sorted(per.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{count:>14,} {100 * count / total:>6.2f}%  {name}")
    print(f"{total:>14,} {100.0:>6.2f}%  total")


if __name__ == "__main__":
    main()
