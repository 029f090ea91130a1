"""Summarise py-spy's raw (collapsed) profiles: where the workers' CPU samples went.

    python bench/pyspy_top.py .tmp/bench/profile-*/w*.txt [--top 40] [--focus rooms/]

Prints the share of samples (over all files) per frame, inclusive and self, with line
numbers dropped and site-packages paths shortened, so the expensive call paths of the
app and of the libraries it calls stand out. `--focus` lists only frames whose text
contains that string in the inclusive table.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

SHORTEN = [
    (re.compile(r"/[^ ;]*/site-packages/"), ""),
    (re.compile(r"/[^ ;]*/lib/python3\.\d+/"), "std:"),
    (re.compile(r"\(/work/main/"), "("),
    (re.compile(r":\d+\)"), ")"),
]


def norm(frame: str) -> str:
    for pattern, repl in SHORTEN:
        frame = pattern.sub(repl, frame)
    return frame


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--focus", default="")
    args = p.parse_args(argv)
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for path in args.files:
        with open(path) as f:
            for line in f:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                n = int(count)
                total += n
                frames = [norm(x) for x in stack.split(";")]
                for frame in set(frames):
                    inclusive[frame] += n
                own[frames[-1]] += n
    if not total:
        print("no samples")
        return 1
    print(f"{total} samples in {len(args.files)} file(s)\n\ninclusive:")
    shown = 0
    for frame, n in inclusive.most_common():
        if args.focus and args.focus not in frame:
            continue
        print(f"  {100 * n / total:5.1f}%  {frame}")
        shown += 1
        if shown >= args.top:
            break
    print("\nself:")
    for frame, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
