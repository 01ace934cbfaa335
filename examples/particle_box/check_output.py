#!/usr/bin/python3
"""Checks what `particle_box --output DIR` wrote, as a test (exit status 1 on any problem):

- run.json, density.csv and ranks.csv describe the run; every density row and every row of
  particles per rank adds up to N;
- particles.lammpstrj has one frame per snapshot step, each with exactly the particles whose
  id < --snapshot-particles, each on the rank owning its position (by the cuts in run.json);
  the last frame's positions and velocities are exactly (bit for bit) those of final_state.bin;
- particles.pvd lists the same frames; each .pvtp joins one well-formed .vtp piece per rank,
  with the same particles and ranks as the LAMMPS frame;
- with --plot SCRIPT: the plot script makes a PNG.

usage: /usr/bin/python3 check_output.py DIR --particles N --steps S --ranks P
                        --snapshot-particles M [--plot plot_spacetime.py]
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

problems = []


def expect(condition, text):
    if not condition:
        problems.append(text)
    return condition


def owner(x, cuts):
    """The rank owning position x: slab r is [cuts[r], cuts[r+1]), the last one includes 1."""
    for r in range(len(cuts) - 1):
        if cuts[r] <= x < cuts[r + 1]:
            return r
    return len(cuts) - 2 if x == cuts[-1] else -1


def read_csv(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
        rows = [[float(v) for v in line.split(",")] for line in f if line.strip()]
    return header, rows


def read_lammps(path):
    """Frames of a LAMMPS text dump: list of (step, columns, rows)."""
    frames = []
    with open(path) as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines) and lines[i]:
        assert lines[i] == "ITEM: TIMESTEP", f"line {i}: {lines[i]!r}"
        step = int(lines[i + 1])
        assert lines[i + 2] == "ITEM: NUMBER OF ATOMS"
        n = int(lines[i + 3])
        assert lines[i + 4].startswith("ITEM: BOX BOUNDS")
        assert lines[i + 8].startswith("ITEM: ATOMS ")
        columns = lines[i + 8].split()[2:]
        rows = [lines[i + 9 + k].split() for k in range(n)]
        frames.append((step, columns, rows))
        i += 9 + n
    return frames


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--particles", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--ranks", type=int, required=True)
    parser.add_argument("--snapshot-particles", type=int, required=True)
    parser.add_argument("--plot")
    args = parser.parse_args()
    d = args.directory
    n, p = args.particles, args.ranks

    with open(os.path.join(d, "run.json")) as f:
        run = json.load(f)
    expect(run["particles"] == n, f"run.json: particles {run['particles']} != {n}")
    expect(run["ranks"] == p, f"run.json: ranks {run['ranks']} != {p}")
    expect(run["steps"] == args.steps, f"run.json: steps {run['steps']} != {args.steps}")
    cuts = run["cuts"]
    expect(len(cuts) == p + 1 and cuts[0] == 0.0 and cuts[-1] == 1.0, f"run.json: cuts {cuts}")

    # Density and load over time.
    header, rows = read_csv(os.path.join(d, "density.csv"))
    expect(len(header) == 2 + run["bins"], f"density.csv: {len(header)} columns")
    k = run["density_every"]
    expected_steps = sorted(set(list(range(0, args.steps + 1, k)) + [args.steps]))
    expect([int(r[0]) for r in rows] == expected_steps, "density.csv: wrong steps")
    for r in rows:
        expect(sum(r[2:]) == n, f"density.csv: step {int(r[0])} counts {sum(r[2:])} particles")
    header, rows = read_csv(os.path.join(d, "ranks.csv"))
    expect(len(header) == 2 + p, f"ranks.csv: {len(header)} columns for {p} ranks")
    for r in rows:
        expect(sum(r[2:]) == n, f"ranks.csv: step {int(r[0])} has {sum(r[2:])} particles")

    # The final state, sorted by id: (int64 id, double x, double v) per particle.
    with open(os.path.join(d, "final_state.bin"), "rb") as f:
        final = f.read()
    expect(len(final) == 24 * n, f"final_state.bin: {len(final)} bytes for {n} particles")
    records = [struct.unpack_from("<qdd", final, 24 * i) for i in range(len(final) // 24)]
    expect(all(rec[0] == i for i, rec in enumerate(records)), "final_state.bin: ids not 0..N-1")

    # LAMMPS frames.
    frames = read_lammps(os.path.join(d, "particles.lammpstrj"))
    k = run["snapshot_every"]
    snap_steps = sorted(set(list(range(0, args.steps + 1, k)) + [args.steps]))
    expect([f[0] for f in frames] == snap_steps,
           f"particles.lammpstrj: frames at {[f[0] for f in frames]}, expected {snap_steps}")
    m = min(args.snapshot_particles, n)
    by_step = {}
    for step, columns, rows in frames:
        expect(columns == ["id", "x", "y", "z", "vx", "vy", "vz", "proc", "radius"],
               f"particles.lammpstrj: columns {columns}")
        ids = sorted(int(r[0]) for r in rows)
        expect(ids == list(range(m)), f"particles.lammpstrj step {step}: ids are not 0..{m - 1}")
        for r in rows:
            x = float(r[1])
            if not expect(owner(x, cuts) == int(r[7]),
                          f"step {step}: particle {r[0]} at {x} written by rank {r[7]}"):
                break
        by_step[step] = {int(r[0]): (float(r[1]), float(r[4]), int(r[7])) for r in rows}
    last = by_step.get(args.steps, {})
    for i, (x, v, _) in last.items():
        if not expect(records[i][1] == x and records[i][2] == v,
                      f"particle {i}: last frame has ({x!r}, {v!r}), final_state.bin "
                      f"({records[i][1]!r}, {records[i][2]!r})"):
            break

    # ParaView: .pvd -> .pvtp -> one .vtp per rank.
    pvd = ET.parse(os.path.join(d, "particles.pvd")).getroot()
    datasets = pvd.findall("./Collection/DataSet")
    expect(len(datasets) == len(snap_steps), f"particles.pvd lists {len(datasets)} frames")
    for ds, step in zip(datasets, snap_steps):
        pvtp_path = os.path.join(d, ds.get("file"))
        pvtp = ET.parse(pvtp_path).getroot()
        pieces = pvtp.findall("./PPolyData/Piece")
        expect(len(pieces) == p, f"{pvtp_path}: {len(pieces)} pieces for {p} ranks")
        seen = {}
        for rank, piece in enumerate(pieces):
            vtp = ET.parse(os.path.join(os.path.dirname(pvtp_path), piece.get("Source"))).getroot()
            piece_node = vtp.find("./PolyData/Piece")
            count = int(piece_node.get("NumberOfPoints"))
            arrays = {a.get("Name"): a.text.split() for a in piece_node.iter("DataArray")
                      if a.get("Name")}
            points = piece_node.find("./Points/DataArray").text.split()
            expect(len(arrays["id"]) == count and len(points) == 3 * count
                   and len(arrays["velocity"]) == 3 * count,
                   f"{piece.get('Source')}: arrays do not have {count} points")
            expect(all(int(r) == rank for r in arrays["rank"]),
                   f"{piece.get('Source')}: a rank value is not {rank}")
            for j, ident in enumerate(arrays["id"]):
                seen[int(ident)] = (float(points[3 * j]), float(arrays["velocity"][3 * j]), rank)
        expect(seen == by_step.get(step), f"step {step}: VTK and LAMMPS frames differ")

    if args.plot:
        png = os.path.join(d, "spacetime.png")
        if os.path.exists(png):
            os.remove(png)
        subprocess.run([sys.executable, args.plot, d], check=True)
        with open(png, "rb") as f:
            head = f.read(8)
        expect(head == b"\x89PNG\r\n\x1a\n", "spacetime.png is not a PNG")
        expect(os.path.getsize(png) > 10000, "spacetime.png is suspiciously small")

    if problems:
        for text in problems:
            print("check_output: " + text)
        sys.exit(1)
    print(f"check_output: {d} is complete and consistent ({len(frames)} frames, {p} ranks)")


if __name__ == "__main__":
    main()
