"""Ask the cluster, before sbatch, whether the job could ever start.

SLURM accepts a job no node of its partition can hold and leaves it pending forever
(``PartitionConfig``, ``Resources``); sbatch's own refusals come as a traceback's last
line. So the request is compared with the partition (it exists, is up, its MaxTime, its
node count) and its nodes (CPUs, memory, GPUs), one sentence per problem naming the key
to change. Runs from validation, before a run dir exists, whenever SLURM's commands are
reachable; a machine without them (a laptop's dry run) skips it.
"""

from __future__ import annotations

from aegis.errors import Problems
from aegis.launch.slurm import cluster, times
from aegis.launch.slurm.render import Request


def check(request: Request, found: Problems) -> None:
    known = cluster.partitions()
    if not known:
        return
    name = request.partition or next((p.name for p in known.values() if p.default), None)
    if name is None:
        found.add("launcher.partition is null but this SLURM cluster has no default partition: expected one of "
                  f"{', '.join(sorted(known))}.", "launcher.partition")
        return
    for one in name.split(","):
        if one not in known:
            found.add(f"launcher.partition={one} is not a partition of this SLURM cluster: expected one of "
                      f"{', '.join(sorted(known))}.", "launcher.partition")
            return
    first = known[name.split(",")[0]]
    key = f"launcher.partition={first.name}" if request.partition else f"the default partition ({first.name})"
    if first.state not in ("UP",):
        found.add(f"{key} is {first.state}: a job there does not start until an admin sets it UP; expected another "
                  "partition.", "launcher.partition")
    limit = times.seconds(first.max_time) if first.max_time not in (None, "UNLIMITED", "INFINITE") else None
    if limit is not None and request.time_s > limit:
        found.add(f"launcher.time={times.shown(request.time_s)} exceeds the MaxTime of {key} ({first.max_time}): "
                  f"expected launcher.time <= {times.shown(limit)}.", "launcher.time")
    _nodes_fit(request, first.name, key, found)


def _nodes_fit(request: Request, partition: str, key: str, found: Problems) -> None:
    nodes = cluster.nodes(partition)
    if not nodes:
        return
    if request.nodes > len(nodes):
        found.add(f"launcher.nodes={request.nodes} cannot start on {key}, which has {len(nodes)} "
                  f"node{'s' * (len(nodes) != 1)}: expected launcher.nodes <= {len(nodes)}.", "launcher.nodes")
        return
    cpus = request.tasks_per_node * request.cpus_per_task
    most_gpus, most_cpus = max(n.gpus for n in nodes), max(n.cpus for n in nodes)
    most_mb = max(n.memory_mb for n in nodes)
    if request.gpus_per_node > most_gpus:
        have = f"at most {most_gpus} GPUs" if most_gpus else "no GPUs"
        found.add(f"launcher.gpus_per_node={request.gpus_per_node} cannot be met on {key}: its nodes have {have}; "
                  f"expected launcher.gpus_per_node <= {most_gpus} or a partition with GPUs.", "launcher.gpus_per_node")
    elif cpus > most_cpus:
        found.add(f"launcher.tasks_per_node={request.tasks_per_node} x launcher.cpus_per_task={request.cpus_per_task} "
                  f"= {cpus} CPUs per node cannot be met on {key}: its nodes have at most {most_cpus} CPUs; expected "
                  f"tasks_per_node x cpus_per_task <= {most_cpus}.", "launcher.tasks_per_node")
    elif request.memory_mb is not None and most_mb and request.memory_mb > most_mb:
        found.add(f"launcher.mem={request.memory_mb}M per node cannot be met on {key}: its nodes have at most "
                  f"{most_mb}M; expected launcher.mem <= {most_mb}M, or null for the partition's default.",
                  "launcher.mem")
    elif sum(1 for n in nodes if _holds(n, request, cpus)) < request.nodes:
        found.add(f"launcher.nodes={request.nodes} cannot start on {key}: fewer of its nodes have "
                  f"{request.gpus_per_node} GPUs, {cpus} CPUs and the memory asked for at once; expected fewer "
                  "nodes or a smaller request per node.", "launcher.nodes")


def _holds(node: cluster.Node, request: Request, cpus: int) -> bool:
    return (node.gpus >= request.gpus_per_node and node.cpus >= cpus
            and (request.memory_mb is None or not node.memory_mb or node.memory_mb >= request.memory_mb))
