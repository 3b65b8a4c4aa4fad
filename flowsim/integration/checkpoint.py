"""Checkpoints: a Trajectory file that also holds the solver's whole state.

A checkpoint is a :class:`~flowsim.Trajectory` ``.npz`` (it loads as one) with two
additions: the leaves of the compiled loop's carry (:class:`.loop.Carry`: point, proposed
next step, stored stage derivative, controller state, counters, watched sign) as arrays
``carry_0, carry_1, ...``, and a ``checkpoint`` entry in the metadata saying which saved
points were the solver's own steps. Since the carry is all a continuous solve holds
between two steps, a run resumed from it takes exactly the steps the uninterrupted run
takes and ends bit for bit where it ends.

:func:`served` decides what a checkpoint can serve: the same run (returned as stored when
finished, continued when interrupted) or, for a finished run, an extension of it (lower
``stop_loss``, later ``t_max``, larger ``max_steps``), which :func:`restore` sets up.
Anything else is refused: a checkpoint never answers for another run.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import numpy as np

from ..files import ArraySpec, FileFormatError, Key, check_arrays, check_keys, read_npz, write_npz
from ..statuses import EXTENDABLE_STATUSES, PRECISION_GUARDS
from ..trajectory import TRAJECTORY_FORMAT, Trajectory, check_trajectory_parts
from .runs import Run, replace_member

#: config entries a run may change when it extends a finished checkpoint
EXTENDABLE = ("stop_loss", "t_max")
#: precision guards newer than the checkpoint format: a file without one was written
#: before it existed, so never switched it off, and the resumed run watches it
NEWER_GUARDS = ("rise_tol",)
#: the state of the precision guards (on, or switched off after a continued event)
GUARD_KEYS = tuple(Key(g.guard, (bool,) if isinstance(g.off, bool) else (float,),
                       required=g.guard not in NEWER_GUARDS)
                   for g in PRECISION_GUARDS.values())
#: the ``checkpoint`` entry of the metadata: what :func:`restore` reads
CHECKPOINT_KEYS = (Key("n_carry", (int,)), Key("n_keep", (int,)), *GUARD_KEYS,
                   Key("located", (bool,), required=False),
                   Key("carry_saved", (bool,), required=False))


def save(path: Path, traj: Trajectory, carry, info: dict) -> Path:
    """Write ``traj`` with the carry leaves and the resume ``info``."""
    arrays, meta = traj.to_npz_parts()
    leaves = jax.tree.leaves(carry)
    for i, leaf in enumerate(leaves):
        arrays[f"carry_{i}"] = np.asarray(leaf)
    meta["checkpoint"] = {**info, "n_carry": len(leaves)}
    # exactly the path asked for: it is the path the next run reads to resume
    return write_npz(Path(path), arrays, meta)


def load(path: Path) -> tuple[Trajectory, list[np.ndarray] | None, dict | None]:
    """The trajectory, the carry leaves and the resume info of a checkpoint (``None``
    for a plain trajectory file)."""
    data, meta = read_npz(path, TRAJECTORY_FORMAT, check_checkpoint_parts)
    info = meta.get("checkpoint")
    traj = Trajectory.from_npz_parts(data, meta)
    if info is None:
        if traj.config.get("kind") == "gradient_flow" and "options" not in traj.config:
            raise FileFormatError(path, "was written by an older flowsim, without the solver "
                                  "state and options a run resumes from; it loads with "
                                  "Trajectory.load but cannot be resumed: use another "
                                  "checkpoint path")
        return traj, None, None
    leaves = [data[f"carry_{i}"] for i in range(int(info["n_carry"]))]
    return traj, leaves, info


def check_checkpoint_parts(data: dict, meta: dict, dims: dict) -> None:
    """A trajectory file's checks (:func:`~flowsim.trajectory.check_trajectory_parts`)
    plus, when it holds a solver state, the ``checkpoint`` entry (:data:`CHECKPOINT_KEYS`,
    ``0 <= n_keep <= points``) and its arrays ``carry_0 .. carry_{n_carry - 1}``."""
    check_trajectory_parts(data, meta, dims)
    info = meta.get("checkpoint")
    if info is None:
        return
    check_keys(info, CHECKPOINT_KEYS, "metadata['checkpoint']")
    if not 0 <= info["n_carry"] or not 0 <= info["n_keep"] <= dims["n"]:
        raise ValueError(f"metadata['checkpoint'] needs n_carry >= 0 and 0 <= n_keep <= "
                         f"{dims['n']} (the points), got {info['n_carry']}, {info['n_keep']}")
    held = sum(k.startswith("carry_") for k in data)
    if info["n_carry"] > held:  # before the names are made: a huge n_carry must not allocate
        raise ValueError(f"metadata['checkpoint'] n_carry is {info['n_carry']} but the file "
                         f"holds {held} carry_* arrays")
    check_arrays(data, [ArraySpec(f"carry_{i}", "fiub", ("...",))
                        for i in range(info["n_carry"])])


def read(path: Path):
    """:func:`load` of the file at ``path``, or ``None`` where there is none."""
    return load(path) if path.exists() else None


def stored_solver(stored) -> str | None:
    """The solver of the run in ``stored`` (a :func:`read`; ``None``: no file).
    ``solver="auto"`` continues a stored run with it: the automatic choice looks at the
    stop loss, and an extension continues the run it extends, whatever the new stop loss
    would choose."""
    return None if stored is None else stored[0].config.get("options", {}).get("solver")


def _comparable(config: dict) -> dict:
    out = {k: v for k, v in config.items() if k not in EXTENDABLE}
    out["options"] = {k: v for k, v in config.get("options", {}).items() if k != "max_steps"}
    return out


def _beyond(new: dict, old: dict) -> bool:
    """Whether ``new`` asks for at least as much as ``old`` (limits only)."""
    new_stop = 0.0 if new["stop_loss"] is None else new["stop_loss"]
    old_stop = 0.0 if old["stop_loss"] is None else old["stop_loss"]
    return (new_stop <= old_stop and new["t_max"] >= old["t_max"]
            and new["options"]["max_steps"] >= old["options"]["max_steps"])


def _limits(config: dict) -> str:
    t_max = config["t_max"]
    return (f"stop_loss={config['stop_loss']}, t_max={t_max if math.isfinite(t_max) else 'inf'}"
            f", max_steps={config['options']['max_steps']}")


def served(path: Path, stored, config: dict) -> Trajectory | None:
    """What the checkpoint at ``path`` (``stored``: its :func:`read`, not ``None``) serves
    the run of ``config``: the stored Trajectory when it is this very run, finished;
    ``None`` when the run is to continue from it (:func:`restore`: an interrupted run, or
    an extension). Raises ``ValueError`` naming the difference when the file holds
    another run, or one that cannot be continued."""
    traj, leaves, info = stored
    old, new = traj.config, config
    if _comparable(old) != _comparable(new):
        keys = sorted(k for k in set(_comparable(old)) | set(_comparable(new))
                      if _comparable(old).get(k) != _comparable(new).get(k))
        raise ValueError(f"checkpoint {path} holds another run (it differs in {keys}); "
                         "use another checkpoint path or delete the file")
    exact = all(old.get(k) == new.get(k) for k in EXTENDABLE) and \
        old["options"]["max_steps"] == new["options"]["max_steps"]
    if exact and traj.status != "interrupted":
        return traj
    if leaves is None:
        raise ValueError(f"checkpoint {path} holds a finished trajectory without the "
                         "solver state needed to continue it")
    if traj.status != "interrupted" and traj.status not in EXTENDABLE_STATUSES:
        raise ValueError(f"checkpoint {path} holds a run that ended with status "
                         f"{traj.status!r} ({_limits(old)}); it cannot be extended")
    if not _beyond(new, old):
        raise ValueError(f"checkpoint {path} holds a run with {_limits(old)}; this call "
                         f"({_limits(new)}) is neither that run nor an extension of it "
                         "(lower stop_loss, later t_max, more max_steps); use another "
                         "checkpoint path")
    return None


def restore(path: Path, stored, run: Run) -> None:
    """Set ``run`` up to continue from the checkpoint (``stored``: its :func:`read`,
    which :func:`served` let continue): its carry (``run.carry``, from the run's engine
    start, is the template the stored leaves fill), saved points, stats and guards."""
    traj, leaves, info = stored
    template, treedef = jax.tree.flatten(run.carry)
    if len(template) != len(leaves) or any(
            np.shape(a) != np.shape(b) for a, b in zip(template, leaves)):
        raise ValueError(f"checkpoint {path}: its solver state does not fit this solver "
                         "(written by another flowsim version?); use another path")
    run.carry = jax.tree.unflatten(treedef, [
        np.asarray(v, dtype=np.asarray(a).dtype) if isinstance(a, (np.ndarray, np.generic))
        else type(a)(v.item()) for a, v in zip(template, leaves)])
    n_keep = int(info["n_keep"])
    t, states = traj.t[:n_keep], traj.states[:n_keep]
    if info.get("located") and info.get("carry_saved"):
        t = np.append(t, float(run.carry.t))
        states = np.concatenate([states, np.asarray(run.carry.y)[None, :]])
    run.ts, run.ys = [t], [states]
    for key in ("det_crossings", "precision_events", "sign_events"):
        run.stats[key] = list(traj.stats.get(key, []))
    run.stats["wall_s"] = float(traj.stats.get("wall_s", 0.0))
    run.member = replace_member(run.member, **{
        key.name: info[key.name] for key in GUARD_KEYS if key.name in info})
