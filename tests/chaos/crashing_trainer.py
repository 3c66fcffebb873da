"""A trainer for the chaos suite, run by `epochwatch launch` as its trainer command.

It writes real kohya-format epoch files in place, as train_network.py does: epoch 1 slowly
(the file grows for --slow-s seconds), epoch 2 at once, then dies half-way through writing
epoch 3 (exit status 1, as an out-of-memory error ends a real run), leaving a truncated file.

usage: crashing_trainer.py MODEL_DIR OUTPUT_DIR OUTPUT_NAME EPOCHS SLOW_S
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from launcher.simtrain import simulate_training, write_in_place

    model, out, name, epochs, slow_s = argv[0], Path(argv[1]), argv[2], int(argv[3]), float(argv[4])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        files = simulate_training(model, staging, name, epochs, 0.0, 8, 4.0, session_id=11,
                                  write_s=0.0, log=io.StringIO())
        data = [f.read_bytes() for f in files[:3]]
    print(f"epoch 1/{epochs}: saving slowly over {slow_s:.0f} s", flush=True)
    write_in_place(out / files[0].name, data[0], slow_s, chunks=max(8, int(slow_s * 4)))
    time.sleep(0.5)
    print(f"epoch 2/{epochs}: saving", flush=True)
    write_in_place(out / files[1].name, data[1], 0.2)
    time.sleep(0.5)
    print(f"epoch 3/{epochs}: saving ... CUDA out of memory", flush=True)
    with open(out / files[2].name, "wb") as fh:
        fh.write(data[2][: len(data[2]) // 2])
        fh.flush()
        os.fsync(fh.fileno())
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
