"""What content identity (issue 33) costs on a CIFAR-10-sized image folder: the first hash, a re-run's stat walk
and, for scale, the data loader's own tree fingerprint that every ``get_dataset`` call already walks.

    .venv/bin/python benchmarks/content_identity_cost.py [FOLDER]

FOLDER defaults to the extracted CIFAR-10 training JPEGs in the data cache (``imagefolder:`` of
``../shared/data/cifar10-train-jpeg.tar.gz`` extracts there on first use). The hash cache is a temporary folder,
so the first call always hashes every file.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tsb_aihw.data.cache import cache_root
from tsb_aihw.data.sources.archive import fingerprint_tree
from tsb_aihw.utils.content import content_id


def default_folder() -> Path:
    found = sorted((cache_root() / "imagefolder").glob("cifar10-train-jpeg-*/extracted/train"))
    if not found:
        sys.exit("no extracted CIFAR-10 folder in the data cache; load imagefolder:../shared/data/"
                 "cifar10-train-jpeg.tar.gz once, or pass a folder")
    return found[0]


def main() -> None:
    tree = Path(sys.argv[1]) if len(sys.argv) > 1 else default_folder()
    files = [f for f in tree.rglob("*") if f.is_file()]
    print(f"{tree}: {len(files):,} files, {sum(f.stat().st_size for f in files) / 1e6:.1f} MB")
    cache = Path(tempfile.mkdtemp())
    t = time.perf_counter()
    content_id(tree, "data", cache)
    print(f"first call (hashes every file): {time.perf_counter() - t:.2f} s")
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        content_id(tree, "data", cache)
        runs.append(time.perf_counter() - t)
    print("later calls (stat walk, cached hash): " + ", ".join(f"{x:.2f} s" for x in runs))
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        fingerprint_tree(tree)
        runs.append(time.perf_counter() - t)
    print("for scale, the loader's tree fingerprint per get_dataset call: " + ", ".join(f"{x:.2f} s" for x in runs))


if __name__ == "__main__":
    main()
