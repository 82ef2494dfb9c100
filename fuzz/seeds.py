"""Writes the fuzz targets' seed corpora: one valid request for every API the broker
advertises (the reliability battery's seeds), and record batches in every codec.

    python3 fuzz/seeds.py OUT_DIR
"""

import os
import sys
import zlib

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "compat-tests", "reliability"))

import kwire  # noqa: E402
import seeds  # noqa: E402


def main(out):
    req_dir = os.path.join(out, "request_decoder")
    batch_dir = os.path.join(out, "batch_parser")
    os.makedirs(req_dir, exist_ok=True)
    os.makedirs(batch_dir, exist_ok=True)
    batch = kwire.simple_batch([b"value-%d" % i for i in range(3)])
    for key, seed in seeds.build(batch).items():
        frame = seeds.frame(key, seed, 7)
        with open(os.path.join(req_dir, f"api-{key}.bin"), "wb") as f:
            f.write(frame[4:])  # without the length prefix, as dispatch gets it
    section = b"".join(kwire.encode_record(i, b"k", b"value-%d" % i) for i in range(3))
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)
    batches = {
        "plain": batch,
        "gzip": kwire.record_batch(gz.compress(section) + gz.flush(), 3, codec=kwire.CODEC_GZIP),
        # Inflates past the target's 256 KiB cap.
        "gzip-bomb": kwire.bomb_batch(kwire.CODEC_GZIP, 1 << 20),
    }
    try:
        batches["zstd-bomb"] = kwire.bomb_batch(kwire.CODEC_ZSTD, 1 << 20)
    except ImportError:
        pass
    for name, b in batches.items():
        with open(os.path.join(batch_dir, f"{name}.bin"), "wb") as f:
            f.write(b)
    sasl_dir = os.path.join(out, "sasl_parsers")
    os.makedirs(sasl_dir, exist_ok=True)
    sasl = {
        "plain": b"\x00alice\x00secret",
        "scram": b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL\nc=biws,r=fyko+d2lbbFgONRv9qkxdawLabc,p=AAAA",
        "oauthbearer": b"n,,\x01auth=Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwiZXhwIjoyMDAwMDAwMDAwfQ.\x01\x01",
    }
    for name, msg in sasl.items():
        with open(os.path.join(sasl_dir, f"{name}.bin"), "wb") as f:
            f.write(msg)
    print(f"seeds: {len(os.listdir(req_dir))} requests, {len(batches)} batches, "
          f"{len(sasl)} SASL messages in {out}")


if __name__ == "__main__":
    main(sys.argv[1])
