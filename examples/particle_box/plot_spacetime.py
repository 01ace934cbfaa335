#!/usr/bin/python3
"""Space-time picture of a particle_box run.

Reads what `particle_box --output DIR` wrote (run.json, density.csv, ranks.csv) and draws
  - left: the density of particles along x (horizontal) over time (vertical), relative to the
    mean, with the slab boundaries dashed and each slab's owning rank named on top;
  - right: the number of particles on each rank over time (the load balance).

usage: /usr/bin/python3 plot_spacetime.py DIR [-o DIR/spacetime.png]

Uses Debian's python3-matplotlib and python3-numpy (run it with /usr/bin/python3).
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: works without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def load_table(path):
    """A CSV file with a header row and numbers below, as (header, 2-D array)."""
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    if data.shape[0] == 0:
        sys.exit(f"plot_spacetime: {path} has no rows")
    return header, data


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="the --output directory of particle_box")
    parser.add_argument("-o", "--output", help="the PNG to write (default DIR/spacetime.png)")
    args = parser.parse_args()
    d = args.directory
    out = args.output or os.path.join(d, "spacetime.png")

    with open(os.path.join(d, "run.json")) as f:
        run = json.load(f)
    _, density = load_table(os.path.join(d, "density.csv"))
    _, ranks = load_table(os.path.join(d, "ranks.csv"))
    times = density[:, 1]
    counts = density[:, 2:]
    bins = counts.shape[1]
    n = run["particles"]
    relative = counts / (n / bins)  # 1 = the mean density
    cuts = run["cuts"]
    p = run["ranks"]

    fig, (ax, ax_ranks) = plt.subplots(
        1, 2, figsize=(13, 6.5), sharey=True, gridspec_kw={"width_ratios": [3, 1.1]}
    )
    t0, t1 = float(times[0]), float(times[-1])
    if t1 == t0:
        t1 = t0 + run["dt"]
    top = max(1.5, float(np.percentile(relative, 99.5)))
    image = ax.imshow(
        relative,
        origin="lower",
        aspect="auto",
        extent=[0.0, 1.0, t0, t1],
        cmap="viridis",
        vmin=0.0,
        vmax=top,
        interpolation="nearest",
    )
    for cut in cuts[1:-1]:
        ax.axvline(cut, color="white", linestyle="--", linewidth=1.0, alpha=0.9)
    # Owning ranks, named above their slab (every k-th when there are many).
    every = max(1, p // 16)
    middles = [(cuts[r] + cuts[r + 1]) / 2 for r in range(0, p, every)]
    top_axis = ax.secondary_xaxis("top")
    top_axis.set_xticks(middles, [f"rank {r}" for r in range(0, p, every)])
    top_axis.tick_params(length=0)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("x (position in the box; dashed: slab boundaries)")
    ax.set_ylabel("time")
    colorbar = fig.colorbar(image, ax=ax, pad=0.01)
    colorbar.set_label("particle density / mean density")

    for r in range(p):
        ax_ranks.plot(ranks[:, 2 + r], ranks[:, 1], label=f"rank {r}" if p <= 8 else None)
    ax_ranks.axvline(n / p, color="gray", linestyle=":", linewidth=1.0)
    ax_ranks.set_xlabel("particles on the rank (dotted: N / P)")
    ax_ranks.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    if p <= 8:
        ax_ranks.legend(loc="best", fontsize="small")
    ax_ranks.set_title("load per rank")

    fig.suptitle(
        f"particle_box: {n:,} particles on {p} ranks, {run['steps']} steps of dt = {run['dt']:g}"
        f" ({run['strategy']}, {run['transport']}, {run['initial']} start"
        + (f", diffusion {run['diffusion']:g}" if run["diffusion"] > 0 else "")
        + ")"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"plot_spacetime: wrote {out}")


if __name__ == "__main__":
    main()
