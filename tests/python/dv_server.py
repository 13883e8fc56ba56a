"""A real DV network-stream server for tests: iniVation's dv-processing `NetworkWriter`
serves the polarity events of an AEDAT 4 recording (read by dv-processing itself) to the
first client, then exits.

    python3 tests/python/dv_server.py RECORDING PORT [--offset-us N] [--compression lz4|zstd|none]

Prints `listening` once the socket is open, then, after the last packet has left its queue,
one JSON line: events served, first and last event (t, x, y, polarity), resolution.
"""

import argparse
import json
import os
import sys
import time

import dv_processing as dv


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("recording")
    ap.add_argument("port", type=int)
    ap.add_argument("--offset-us", type=int, default=0, help="added to every timestamp")
    ap.add_argument("--compression", default="lz4", choices=["lz4", "zstd", "none"])
    a = ap.parse_args()

    rec = dv.io.MonoCameraRecording(a.recording)
    res = rec.getEventResolution()
    stream = dv.io.Stream.EventStream(0, "events", rec.getCameraName(), res)
    stream.setCompression(
        {
            "lz4": dv.CompressionType.LZ4,
            "zstd": dv.CompressionType.ZSTD,
            "none": dv.CompressionType.NONE,
        }[a.compression]
    )
    writer = dv.io.NetworkWriter("127.0.0.1", a.port, stream)
    print("listening", flush=True)
    deadline = time.time() + 60
    while writer.getClientCount() == 0:
        if time.time() > deadline:
            print("no client connected within 60 s", file=sys.stderr)
            return 1
        time.sleep(0.01)

    served, first, last = 0, None, None
    while rec.isRunning():
        batch = rec.getNextEventBatch()
        if batch is None:
            break
        if batch.size() == 0:
            continue
        if a.offset_us:
            shifted = dv.EventStore()
            for e in batch:
                shifted.push_back(e.timestamp() + a.offset_us, e.x(), e.y(), e.polarity())
            batch = shifted
        writer.writeEvents(batch)
        f, b = batch.front(), batch.back()
        if first is None:
            first = [f.timestamp(), f.x(), f.y(), bool(f.polarity())]
        last = [b.timestamp(), b.x(), b.y(), bool(b.polarity())]
        served += batch.size()
    while writer.getQueuedPacketCount() > 0:
        time.sleep(0.01)
    time.sleep(0.3)
    print(
        json.dumps({"events": served, "first": first, "last": last, "resolution": list(res)}),
        flush=True,
    )
    # Destroying a NetworkWriter can wait forever on its threads: leave at once (the
    # operating system closes the socket).
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
