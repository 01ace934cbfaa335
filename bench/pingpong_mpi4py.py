#!/usr/bin/python3
"""bench/pingpong_mpi4py.py — the tutorial's own tools on the ping-pong of bench_pingpong.cpp.

Moves N particles (a numpy structured array of id, x, v: 24 bytes each, as in the C++
benchmarks) from rank 0 to rank 1 and back, and reports MB/s one way:
  mpi4py-Send   comm.Send / comm.Recv of the numpy array (a buffer: no packing; typed's
                counterpart)
  mpi4py-send   comm.send / comm.recv of the same array (pickled; serialized's counterpart)
Both variants run interleaved in one invocation, several repetitions, median reported. What
arrived is checked outside the timing. Run with Debian's interpreter (it sees python3-mpi4py):
  mpirun -np 2 /usr/bin/python3 bench/pingpong_mpi4py.py --sizes 1e3,1e4,1e5,1e6,1e7 --reps 5
Output: one JSON object per line on rank 0, in the format of bench_pingpong.
"""
import argparse
import json
import statistics
import sys

import numpy as np
from mpi4py import MPI
from mpi4py.util.dtlib import from_numpy_dtype

PARTICLE = np.dtype([("id", "<i8"), ("x", "<f8"), ("v", "<f8")])
TAG = 3


def particles(n):
    p = np.empty(n, dtype=PARTICLE)
    p["id"] = np.arange(n)
    p["x"] = (np.arange(n) + 0.5) / max(n, 1)
    p["v"] = np.linspace(-1.0, 1.0, n)
    return p


class Buffers:
    """Send: the particles travel from one numpy array into another, as MPI buffers."""

    name = "mpi4py-Send"

    def __init__(self, comm, n):
        self.comm = comm
        self.source = particles(n)
        self.arrived = np.empty(n, dtype=PARTICLE)
        # The structured dtype as a committed MPI struct datatype (as the C++ typed transport).
        self.datatype = from_numpy_dtype(PARTICLE).Commit()
        self.out = [self.source, n, self.datatype]
        self.into = [self.arrived, n, self.datatype]

    def round_trip(self):
        peer = 1 - self.comm.rank
        if self.comm.rank == 0:
            self.comm.Send(self.out, dest=peer, tag=TAG)
            self.comm.Recv(self.into, source=peer, tag=TAG)
        else:
            self.comm.Recv(self.into, source=peer, tag=TAG)
            self.comm.Send(self.out, dest=peer, tag=TAG)

    def intact(self):
        return np.array_equal(self.arrived, self.source)


class Pickled:
    """send: the particles are pickled, sent, unpickled into a new array."""

    name = "mpi4py-send"

    def __init__(self, comm, n):
        self.comm = comm
        self.source = particles(n)
        self.arrived = None

    def round_trip(self):
        peer = 1 - self.comm.rank
        if self.comm.rank == 0:
            self.comm.send(self.source, dest=peer, tag=TAG)
            self.arrived = self.comm.recv(source=peer, tag=TAG)
        else:
            self.arrived = self.comm.recv(source=peer, tag=TAG)
            self.comm.send(self.source, dest=peer, tag=TAG)

    def intact(self):
        return self.arrived is not None and np.array_equal(self.arrived, self.source)


def emit(comm, record):
    if comm.rank == 0:
        print(json.dumps(record), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e3,1e4,1e5,1e6,1e7")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    if comm.size != 2:
        if comm.rank == 0:
            print("pingpong_mpi4py.py runs on exactly 2 ranks", file=sys.stderr)
        comm.Abort(1)
    for size in (float(s) for s in args.sizes.split(",")):
        n = int(size)
        nbytes = n * PARTICLE.itemsize
        trips = int(max(3, min(1000, 1e9 / max(nbytes, 1))))
        variants = [Buffers(comm, n), Pickled(comm, n)]
        for v in variants:
            v.round_trip()  # warm-up
        seconds = [[] for _ in variants]
        for rep in range(args.reps):
            for k in range(len(variants)):
                i = (k + rep) % len(variants)
                v = variants[i]
                comm.Barrier()
                start = MPI.Wtime()
                for _ in range(trips):
                    v.round_trip()
                t = comm.allreduce(MPI.Wtime() - start, op=MPI.MAX) / (2.0 * trips)
                if not comm.allreduce(v.intact(), op=MPI.LAND):
                    if comm.rank == 0:
                        print(f"{v.name}: the particles did not arrive intact", file=sys.stderr)
                    comm.Abort(2)
                seconds[i].append(t)
                emit(comm, {"bench": "pingpong", "variant": v.name, "particles": n,
                            "bytes": nbytes, "rep": rep, "trips": trips,
                            "seconds_one_way": t, "mb_per_second": nbytes / t / 1e6})
        for v, ts in zip(variants, seconds):
            med = statistics.median(ts)
            emit(comm, {"bench": "pingpong", "summary": True, "variant": v.name, "particles": n,
                        "bytes": nbytes, "reps": args.reps, "median_seconds_one_way": med,
                        "mb_per_second": nbytes / med / 1e6,
                        "best_mb_per_second": nbytes / min(ts) / 1e6})


if __name__ == "__main__":
    main()
